package archtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/ppml-project/ppml"

// layers lists the layers from the bottom up; a package may import packages
// of its own layer and of lower ones only. An entry ending in "/" names
// every package below that directory; an exact name wins over a prefix.
// docs/architecture.md shows the same table: change both together.
var layers = [][]string{
	{"internal/", "fault", "wire/", "docs"}, // leaf utilities, the types both sides import, the embedded API description
	{"quote/abi"},                           // quote layouts
	{"quote/pck"},                           // PCK certificate extension, CA types
	{"quote/collateral"},                    // collateral documents, offline directory, PCS/PCCS fetcher
	{"quote/verify"},                        // chains, CRLs, signatures, TCB levels
	{"quote/policy"},                        // measurements, TCB statuses, debug, simulation
	{"enclave/sigstruct"},                   // SIGSTRUCT parsing and policies from it
	{"quote/sim"},                           // simulated TEE (test PKI, collateral, quotes)
	{"quote/source", "quote/quotetest"},     // trust anchor and collateral selection
	{"enclave"},                             // quote generation (Gramine, Occlum, TDX, simulated)
	{"store", "audit"},                      // persistence interface, audit log
	{"store/", "metrics"},                   // store backends and wrappers, metrics
	{"kms/rootkey"},                         // root keyring
	{"kms"},                                 // the KMS core
	{"attestation", "kms/secrets", "migrate/bigdlkms"}, // the Attestation Service core; the secret manager; BigDL KMS import
	{"api/httputil"},         // shared HTTP helpers of the adapters
	{"api/"},                 // protocol adapters: ehsm, native, bigdlkms, bigdlas
	{"server"},               // ppml serve: wires stores, cores and adapters
	{"dataformat/keysource"}, // where data keys come from
	{"dataformat/stream"},    // the ppml file format
	{"dataformat/"},          // BigDL and Parquet formats, directory driver
	{"client"},               // Go client of every API
	{"client/kmskeys"},       // data keys from a KMS
	{"k8s/kube", "k8s/material", "k8s/manifests", "k8s/image", "k8s/k8stest"},
	{"k8s/setup"},  // ppml k8s setup
	{"k8s/doctor"}, // ppml doctor
	{"agent", "trustedsql", "spark/", "server/servertest", "monitoring", "interop"},
	{"bench"},      // ppml bench: load generators over client and agent
	{"quickstart"}, // the whole workflow in one process
	{"cmd/"},       // flags -> library calls
}

// isolated are layers whose packages must not import each other: a
// protocol adapter is thin over the cores, never over another adapter.
var isolated = []string{"api/"}

// rank returns the layer of a package path relative to the module.
func rank(rel string) (int, bool) {
	best, bestLen := -1, -1
	for i, l := range layers {
		for _, e := range l {
			switch {
			case e == rel:
				return i, true
			case strings.HasSuffix(e, "/") && strings.HasPrefix(rel, e) && len(e) > bestLen:
				best, bestLen = i, len(e)
			}
		}
	}
	return best, best >= 0
}

type pkg struct {
	ImportPath string
	Imports    []string
}

// violations checks a graph (paths relative to the module) and returns one
// line per unranked package and per upward import.
func violations(graph map[string][]string) []string {
	var out []string
	for p, imps := range graph {
		rp, ok := rank(p)
		if !ok {
			out = append(out, fmt.Sprintf("%s has no layer: add it to the layers of internal/archtest and docs/architecture.md", p))
			continue
		}
		for _, i := range imps {
			ri, ok := rank(i)
			if ok && ri > rp {
				out = append(out, fmt.Sprintf("%s (layer %d) imports %s (layer %d): lower layers must not import higher ones (docs/architecture.md)", p, rp, i, ri))
			}
			for _, iso := range isolated {
				if ok && ri == rp && strings.HasPrefix(p, iso) && strings.HasPrefix(i, iso) {
					out = append(out, fmt.Sprintf("%s imports %s: packages of %s do not import each other (docs/architecture.md)", p, i, iso))
				}
			}
		}
	}
	sort.Strings(out)
	return out
}

// moduleGraph runs go list over the module: every package and its non-test
// imports inside the module.
func moduleGraph(t *testing.T) map[string][]string {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	graph := map[string][]string{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		rel, ok := relative(p.ImportPath)
		if !ok {
			continue
		}
		var own []string
		for _, i := range p.Imports {
			if r, ok := relative(i); ok {
				own = append(own, r)
			}
		}
		graph[rel] = own
	}
	return graph
}

func relative(path string) (string, bool) {
	if path == module {
		return "", false
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	return rel, ok
}

// TestLayers fails when a package imports a higher layer or has no layer.
func TestLayers(t *testing.T) {
	graph := moduleGraph(t)
	if len(graph) < 40 || graph["server"] == nil {
		t.Fatalf("go list found %d packages; the module's packages were not listed", len(graph))
	}
	for _, v := range violations(graph) {
		t.Error(v)
	}
}

// The check itself finds an upward import, an unranked package and one
// adapter importing another, and lets same-layer and downward imports
// through.
func TestViolationsFindsUpwardImports(t *testing.T) {
	got := violations(map[string][]string{
		"quote/verify": {"quote/abi", "attestation"},   // attestation is higher
		"api/ehsm":     {"api/httputil", "api/native"}, // another adapter
		"store/rowmac": {"store", "store/sqlstore"},    // same layer, lower layer: allowed
		"newthing":     {"fault"},
	})
	want := []string{
		"api/ehsm imports api/native: packages of api/ do not import each other",
		"newthing has no layer",
		"quote/verify (layer 4) imports attestation (layer 14)",
	}
	if len(got) != len(want) {
		t.Fatalf("violations: %q", got)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Fatalf("violation %d: %q, want %q", i, got[i], want[i])
		}
	}
}
