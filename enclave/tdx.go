package enclave

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// TDX returns the quoter of Linux's configfs-tsm interface (kernel >= 6.7);
// root is /sys/kernel/config/tsm/report unless given.
func TDX(root string) (Quoter, error) {
	if root == "" {
		root = "/sys/kernel/config/tsm/report"
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%s is missing: not a TDX guest, or the kernel lacks configfs-tsm (Linux 6.7+; mount configfs at /sys/kernel/config)", root)
	}
	return &tdx{root: root}, nil
}

type tdx struct{ root string }

func (t *tdx) Simulated() bool  { return false }
func (t *tdx) Describe() string { return "TDX configfs-tsm " + t.root }

func (t *tdx) Quote(rd [64]byte) ([]byte, error) {
	for attempt := 0; attempt < 3; attempt++ {
		var id [8]byte
		rand.Read(id[:])
		entry := filepath.Join(t.root, "ppml-"+hex.EncodeToString(id[:]))
		if err := os.Mkdir(entry, 0o700); err != nil {
			return nil, fmt.Errorf("creating a configfs-tsm report entry: %w", err)
		}
		q, retry, err := t.once(entry, rd)
		os.Remove(entry)
		if err != nil {
			return nil, err
		}
		if !retry {
			return q, nil
		}
	}
	return nil, fmt.Errorf("configfs-tsm report entry kept changing under us (another writer); retry")
}

func (t *tdx) once(entry string, rd [64]byte) ([]byte, bool, error) {
	if p, err := os.ReadFile(filepath.Join(entry, "provider")); err == nil && !bytes.HasPrefix(p, []byte("tdx_guest")) {
		return nil, false, fmt.Errorf("configfs-tsm provider is %q, not tdx_guest", bytes.TrimSpace(p))
	}
	if err := writeFull(filepath.Join(entry, "inblob"), rd[:]); err != nil {
		return nil, false, fmt.Errorf("writing report data to inblob: %w", err)
	}
	gen1, _ := os.ReadFile(filepath.Join(entry, "generation"))
	q, err := os.ReadFile(filepath.Join(entry, "outblob"))
	if err != nil {
		return nil, false, fmt.Errorf("reading the TDX quote from outblob: %w", err)
	}
	gen2, _ := os.ReadFile(filepath.Join(entry, "generation"))
	if !bytes.Equal(gen1, gen2) {
		return nil, true, nil
	}
	return q, false, nil
}
