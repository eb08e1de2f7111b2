// Package enclave obtains quotes from inside a TEE: Gramine's
// /dev/attestation pseudo-files, Occlum's /dev/sgx ioctls and Linux's TDX
// configfs-tsm interface, plus a simulated enclave directory (laid out like
// /dev/attestation) whose quotes come from the simulated TEE in package sim.
// It also delivers released keys where the enclave runtime expects them.
package enclave

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/ppml-project/ppml/quote/abi"
	"github.com/ppml-project/ppml/quote/sim"
)

// Quoter produces a quote over 64 bytes of report data.
type Quoter interface {
	Quote(reportData [64]byte) ([]byte, error)
	// Simulated reports whether the quote comes from the simulated TEE.
	Simulated() bool
	// Describe names the source, for messages.
	Describe() string
}

// SimConfigFile marks a directory as a simulated enclave (see PrepareSim).
const SimConfigFile = "ppml-simulated-enclave.json"

// SimConfig is the content of SimConfigFile.
type SimConfig struct {
	SimDir       string           `json:"sim_dir"`
	TEE          string           `json:"tee"` // sgx or tdx
	Measurements sim.Measurements `json:"measurements"`
}

// PrepareSim lays out dir like /dev/attestation for a simulated enclave with
// the given measurements, whose quotes come from the simulation PKI in simDir.
func PrepareSim(dir, simDir, tee string, m sim.Measurements) error {
	if tee != "sgx" && tee != "tdx" {
		return fmt.Errorf("--tee %q: want sgx or tdx", tee)
	}
	if _, err := sim.Load(simDir); err != nil {
		return fmt.Errorf("--sim-dir %s: %w (create it with ppml sim init, or use <data-dir>/sim of a server started with --allow-simulation)", simDir, err)
	}
	abs, err := filepath.Abs(simDir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "attestation_type"), []byte("dcap"), 0o644); err != nil {
		return err
	}
	m.ReportData = [64]byte{}
	b, err := json.MarshalIndent(SimConfig{SimDir: abs, TEE: tee, Measurements: m}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, SimConfigFile), b, 0o600)
}

// Gramine returns the quoter of a Gramine /dev/attestation directory (or a
// directory prepared by PrepareSim, which then quotes with the simulated TEE).
func Gramine(dir string) (Quoter, error) {
	if dir == "" {
		dir = "/dev/attestation"
	}
	if b, err := os.ReadFile(filepath.Join(dir, SimConfigFile)); err == nil {
		var c SimConfig
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("%s: %w", SimConfigFile, err)
		}
		s, err := sim.LoadQuoting(c.SimDir)
		if err != nil {
			return nil, fmt.Errorf("simulated enclave %s: %w", dir, err)
		}
		return &simQuoter{dir: dir, cfg: c, tee: s}, nil
	}
	t, err := os.ReadFile(filepath.Join(dir, "attestation_type"))
	if err != nil {
		return nil, fmt.Errorf("%s/attestation_type is not readable (%v): not inside a Gramine enclave? (for simulation, prepare a directory with ppml sim enclave and pass --attestation-dir)", dir, err)
	}
	if s := string(t); s == "none" || s == "none\n" {
		return nil, fmt.Errorf("Gramine remote attestation is disabled in this enclave (attestation_type is none): build the image with sgx.remote_attestation = \"dcap\" (a -noattest image cannot attest)")
	}
	return &gramine{dir: dir}, nil
}

type gramine struct {
	dir string
	mu  sync.Mutex // the pseudo-files are process-local and not thread-safe
}

func (g *gramine) Simulated() bool  { return false }
func (g *gramine) Describe() string { return "Gramine " + g.dir }

func (g *gramine) Quote(rd [64]byte) ([]byte, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err := writeFull(filepath.Join(g.dir, "user_report_data"), rd[:]); err != nil {
		return nil, fmt.Errorf("writing report data: %w", err)
	}
	f, err := os.Open(filepath.Join(g.dir, "quote"))
	if err != nil {
		return nil, fmt.Errorf("reading the quote: %w", err)
	}
	defer f.Close()
	q, err := io.ReadAll(io.LimitReader(f, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("reading the quote: %w", err)
	}
	if len(q) == 0 {
		return nil, errors.New("the enclave returned an empty quote")
	}
	return q, nil
}

func writeFull(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type simQuoter struct {
	dir string
	cfg SimConfig
	tee *sim.SimTEE
	mu  sync.Mutex
}

func (s *simQuoter) Simulated() bool  { return true }
func (s *simQuoter) Describe() string { return "SIMULATED " + s.cfg.TEE + " enclave " + s.dir }

func (s *simQuoter) Quote(rd [64]byte) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Keep the /dev/attestation shape: the report data goes through the file.
	if err := os.WriteFile(filepath.Join(s.dir, "user_report_data"), rd[:], 0o600); err != nil {
		return nil, err
	}
	m := s.cfg.Measurements
	m.ReportData = rd
	q, err := s.tee.Quote(abi.TEE(s.cfg.TEE), m)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(s.dir, "quote"), q, 0o600); err != nil {
		return nil, err
	}
	return q, nil
}

// DeliverGramineKey writes a 16-byte key to <dir>/keys/<name>, Gramine's
// encrypted-files key interface (writes of any other length fail there).
func DeliverGramineKey(dir, name string, key []byte) error {
	if dir == "" {
		dir = "/dev/attestation"
	}
	if len(key) != 16 {
		return fmt.Errorf("gramine:%s needs a 16-byte key but the data key has %d bytes: make the data key with keylen 16 for Gramine encrypted files", name, len(key))
	}
	if name == "" || filepath.Base(name) != name {
		return fmt.Errorf("gramine:%q is not a key name", name)
	}
	p := filepath.Join(dir, "keys", name)
	if _, err := os.Stat(filepath.Join(dir, SimConfigFile)); err == nil {
		return os.WriteFile(p, key, 0o600) // simulated directory: a plain file
	}
	return writeFull(p, key)
}
