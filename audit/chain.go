package audit

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// The hash chain. Every record carries seq (1, 2, ...) and prev, the
// SHA-256 of the previous line (without its newline), so a record altered,
// removed or reordered breaks the chain at the next record. Every
// CheckpointEvery records, every CheckpointInterval and at Close the logger
// writes a checkpoint record (action AuditCheckpoint) whose sig is an ES256
// signature over its seq and prev: rewriting history and recomputing the
// hashes, or cutting the tail, is then detected by `ppml audit verify` with
// the public key, which the operator keeps apart from the log.

const (
	CheckpointEvery    = 100
	CheckpointInterval = time.Minute
	CheckpointAction   = "AuditCheckpoint"
)

type chainFields struct {
	Seq  uint64 `json:"seq"`
	Prev string `json:"prev"`
	Sig  string `json:"sig,omitempty"`
}

type line struct {
	Event
	chainFields
}

func checkpointMessage(seq uint64, prev string) []byte {
	d := sha256.Sum256([]byte("ppml/audit-checkpoint/v1\n" + strconv.FormatUint(seq, 10) + "\n" + prev))
	return d[:]
}

// SetCheckpointKey makes the logger sign checkpoints with key (ES256).
func (l *Logger) SetCheckpointKey(key *ecdsa.PrivateKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ckey = key
}

// encodeLocked renders e as the next chained line (l.mu held).
func (l *Logger) encodeLocked(e Event, sign bool) ([]byte, error) {
	ln := line{Event: e, chainFields: chainFields{Seq: l.seq + 1, Prev: hex.EncodeToString(l.prev[:])}}
	if sign {
		sig, err := ecdsa.SignASN1(rand.Reader, l.ckey, checkpointMessage(ln.Seq, ln.Prev))
		if err != nil {
			return nil, err
		}
		ln.Sig = base64.StdEncoding.EncodeToString(sig)
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(ln); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func (l *Logger) advanceLocked(b []byte) {
	l.seq++
	l.prev = sha256.Sum256(bytes.TrimSuffix(b, []byte("\n")))
}

// resume continues the chain of an existing file from its last line.
func (l *Logger) resume(f *os.File) error {
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	off := max(0, st.Size()-256<<10)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	buf = bytes.TrimRight(buf, "\n")
	last := buf[bytes.LastIndexByte(buf, '\n')+1:]
	var c chainFields
	_ = json.Unmarshal(last, &c) // a line from before the chain has seq 0
	l.seq = c.Seq
	l.prev = sha256.Sum256(last)
	return nil
}

// LoadOrCreateCheckpointKey reads the ES256 key at path (PKCS#8 PEM), or
// creates it (0600) with its public key at pubPath (PEM).
func LoadOrCreateCheckpointKey(path, pubPath string) (*ecdsa.PrivateKey, error) {
	if b, err := os.ReadFile(path); err == nil {
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("%s: not a PEM private key", path)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok || ek.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%s: not an ECDSA P-256 key", path)
		}
		return ek, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	pub, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	return k, nil
}

// ParsePublicKey reads a PEM ECDSA P-256 public key.
func ParsePublicKey(b []byte) (*ecdsa.PublicKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("not a PEM public key")
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	ek, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("not an ECDSA public key")
	}
	return ek, nil
}

// VerifyReport is what Verify found.
type VerifyReport struct {
	Records     int    `json:"records"`
	Unchained   int    `json:"unchained"` // lines from before the hash chain
	Checkpoints int    `json:"checkpoints"`
	LastSigned  uint64 `json:"last_checkpoint_seq"`
	Uncovered   int    `json:"records_after_last_checkpoint"`
	// Problem names the first record altered, removed or reordered, or a
	// bad checkpoint; empty when the log is intact.
	Problem string `json:"problem,omitempty"`
	Line    int    `json:"line,omitempty"`
}

// Verify checks the chain and the checkpoint signatures of a log.
func Verify(r io.Reader, pub *ecdsa.PublicKey) (VerifyReport, error) {
	var rep VerifyReport
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var raw [][]byte
	seen := map[uint64]bool{}
	for sc.Scan() {
		b := bytes.Clone(sc.Bytes())
		raw = append(raw, b)
		var c chainFields
		if json.Unmarshal(b, &c) == nil && c.Seq > 0 {
			seen[c.Seq] = true
		}
	}
	if err := sc.Err(); err != nil {
		return rep, err
	}
	var prev [32]byte
	var want uint64
	n := 0
	fail := func(line int, format string, a ...any) (VerifyReport, error) {
		rep.Problem, rep.Line = fmt.Sprintf(format, a...), line
		return rep, nil
	}
	for _, b := range raw {
		n++
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		var ln line
		if err := json.Unmarshal(b, &ln); err != nil {
			return fail(n, "line %d is not an audit record (%v): it was altered", n, err)
		}
		switch {
		case ln.Seq == 0 && want == 0:
			rep.Unchained++
		case ln.Seq == 0:
			return fail(n, "line %d has no sequence number inside the chain: it was altered or inserted", n)
		default:
			if want == 0 {
				want = ln.Seq
				if rep.Unchained == 0 && ln.Seq != 1 {
					return fail(n, "the log starts at record %d: records 1..%d were removed", ln.Seq, ln.Seq-1)
				}
			}
			if ln.Seq > want && seen[want] {
				return fail(n, "record %d (line %d) comes before record %d: the records were reordered", ln.Seq, n, want)
			}
			if ln.Seq > want {
				return fail(n, "record %d (line %d) follows record %d: record(s) %d..%d were removed", ln.Seq, n, want-1, want, ln.Seq-1)
			}
			if ln.Seq < want {
				return fail(n, "record %d (line %d) comes after record %d: the records were reordered", ln.Seq, n, want-1)
			}
			if ln.Prev != hex.EncodeToString(prev[:]) {
				return fail(n-1, "record %d (line %d) was altered: record %d does not chain to it", ln.Seq-1, n-1, ln.Seq)
			}
			rep.Records++
			rep.Uncovered++
			want++
			if ln.Action == CheckpointAction {
				sig, err := base64.StdEncoding.DecodeString(ln.Sig)
				if err != nil || !ecdsa.VerifyASN1(pub, checkpointMessage(ln.Seq, ln.Prev), sig) {
					return fail(n, "checkpoint record %d (line %d) has no valid signature of the checkpoint key: the log before it was rewritten, or it is another server's key", ln.Seq, n)
				}
				rep.Checkpoints++
				rep.LastSigned = ln.Seq
				rep.Uncovered = 0
			}
		}
		prev = sha256.Sum256(b)
	}
	return rep, nil
}
