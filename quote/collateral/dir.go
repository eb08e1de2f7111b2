package collateral

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ppml-project/ppml/quote/pck"
)

// Key identifies collateral: TEE ("sgx" or "tdx", from the TCB info id),
// FMSPC (lower-case hex) and the PCK CA type of its CRL ("" when the
// collateral carries no CRLs).
type Key struct {
	TEE   string
	FMSPC string
	CA    string
}

func (k Key) String() string {
	ca := k.CA
	if ca == "" {
		ca = "no CRL"
	}
	return fmt.Sprintf("%s/%s/%s", k.TEE, k.FMSPC, ca)
}

// KeyOf derives the index key of a collateral document.
func KeyOf(c *Collateral) (Key, *TCBInfo, error) {
	ti, err := ParseTCBInfo([]byte(c.TCBInfo))
	if err != nil {
		return Key{}, nil, err
	}
	k := Key{TEE: strings.ToLower(ti.ID), FMSPC: fmt.Sprintf("%x", []byte(ti.FMSPC))}
	if k.TEE != "sgx" && k.TEE != "tdx" {
		return Key{}, nil, fmt.Errorf("tcb_info id %q is neither SGX nor TDX", ti.ID)
	}
	if c.PCKCRLIssuerChain != "" {
		certs, err := ParseChain([]byte(c.PCKCRLIssuerChain))
		if err != nil {
			return Key{}, nil, fmt.Errorf("pck_crl_issuer_chain: %v", err)
		}
		var ok bool
		if k.CA, ok = pck.CAType(certs[0].Subject.CommonName); !ok {
			return Key{}, nil, fmt.Errorf("pck_crl_issuer_chain: issuer %q is neither the Platform nor the Processor CA", certs[0].Subject.CommonName)
		}
	}
	return k, ti, nil
}

type dirEntry struct {
	path  string
	col   *Collateral
	issue time.Time
}

// Dir is an offline collateral cache: every *.json file of a directory in
// the collateral layout, indexed by TEE, FMSPC and CA type.
type Dir struct {
	path    string
	entries map[Key][]dirEntry
}

// LoadDir reads every *.json file in dir. A file that is not valid
// collateral is an error naming the file (nothing is skipped silently).
func LoadDir(dir string) (*Dir, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("collateral dir: %w", err)
	}
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("collateral dir: %w", err)
	}
	d := &Dir{path: dir, entries: map[Key][]dirEntry{}}
	for _, f := range files {
		c, err := LoadFile(f)
		if err != nil {
			return nil, fmt.Errorf("collateral dir: %w", err)
		}
		k, ti, err := KeyOf(c)
		if err != nil {
			return nil, fmt.Errorf("collateral dir: %s: %w", f, err)
		}
		d.entries[k] = append(d.entries[k], dirEntry{path: f, col: c, issue: ti.IssueDate})
	}
	for k := range d.entries {
		sort.SliceStable(d.entries[k], func(i, j int) bool { return d.entries[k][i].issue.After(d.entries[k][j].issue) })
	}
	return d, nil
}

// Keys lists the indexed keys.
func (d *Dir) Keys() []Key {
	var out []Key
	for k := range d.entries {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b Key) int { return strings.Compare(a.String(), b.String()) })
	return out
}

// Lookup returns the newest collateral (by TCB info issueDate) for a TEE,
// FMSPC and CA type. Collateral with CRLs of that CA type is preferred;
// collateral without CRLs is returned only when none with CRLs exists (the
// verdict then says crl_checked: false).
func (d *Dir) Lookup(tee, fmspc, ca string) (*Collateral, string, error) {
	fmspc = strings.ToLower(fmspc)
	for _, k := range []Key{{tee, fmspc, ca}, {tee, fmspc, ""}} {
		if e := d.entries[k]; len(e) > 0 {
			return e[0].col, e[0].path, nil
		}
	}
	var have []string
	for _, k := range d.Keys() {
		have = append(have, k.String())
	}
	return nil, "", fmt.Errorf("collateral dir %s: no collateral for %s FMSPC %s (CA %s); it holds [%s]: add the matching collateral JSON file or fetch it with --pccs-url",
		d.path, tee, fmspc, ca, strings.Join(have, ", "))
}

// Get is Lookup without the path (a source.Getter).
func (d *Dir) Get(_ context.Context, tee, fmspc, ca string) (*Collateral, error) {
	c, _, err := d.Lookup(tee, fmspc, ca)
	return c, err
}
