package stream

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/ppml-project/ppml/dataformat/keysource"
)

// The known-answer vectors are the ones printed in docs/format-ppml.md §7:
// the test reads them from there, so the document and the code cannot drift
// apart. Each vector is checked three ways: against specFile, written here
// from the document's §2–§3 with the standard library only (not with this
// package's code), against Encrypt with the vector's salt, and by Decrypt and
// NewReaderAt, which must give back the plaintext.

type katVector struct {
	name   string
	fields map[string]string // as printed; hex values without spaces
	order  []string
}

func (v *katVector) get(t *testing.T, k string) string {
	t.Helper()
	s, ok := v.fields[k]
	if !ok {
		t.Fatalf("vector %s: no field %q in docs/format-ppml.md §7", v.name, k)
	}
	return s
}

func (v *katVector) hex(t *testing.T, k string) []byte {
	t.Helper()
	s := v.get(t, k)
	if s == "(empty)" {
		return []byte{}
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("vector %s: %s: %v", v.name, k, err)
	}
	return b
}

func (v *katVector) text(t *testing.T, k string) string {
	t.Helper()
	s := v.get(t, k)
	if s == "(empty)" {
		return ""
	}
	u, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("vector %s: %s must be a quoted string: %v", v.name, k, err)
	}
	return u
}

// docVectors parses the fenced blocks of §7 that start with "vector NAME".
// A field is "name value"; a line starting with spaces continues the value.
func docVectors(t *testing.T) []*katVector {
	t.Helper()
	doc, err := os.ReadFile("../../docs/format-ppml.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := bytes.Cut(doc, []byte("\n## 7. Test vectors\n"))
	if !ok {
		t.Fatal(`docs/format-ppml.md has no "## 7. Test vectors" section`)
	}
	var vs []*katVector
	var cur *katVector
	var last string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(sec))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			in = !in
			cur = nil
			continue
		}
		if !in || strings.TrimSpace(line) == "" {
			continue
		}
		if cur == nil {
			name, ok := strings.CutPrefix(line, "vector ")
			if !ok {
				continue // another kind of block
			}
			cur = &katVector{name: name, fields: map[string]string{}}
			vs = append(vs, cur)
			continue
		}
		if strings.HasPrefix(line, " ") {
			cur.fields[last] += strings.ReplaceAll(strings.TrimSpace(line), " ", "")
			continue
		}
		k, val, _ := strings.Cut(line, " ")
		val = strings.TrimSpace(val)
		if !strings.HasPrefix(val, `"`) {
			val = strings.ReplaceAll(val, " ", "")
		}
		cur.fields[k] = val
		cur.order = append(cur.order, k)
		last = k
	}
	if len(vs) < 2 {
		t.Fatalf("docs/format-ppml.md §7 holds %d test vectors, want at least 2", len(vs))
	}
	return vs
}

// specFile encrypts by the document alone (§2 layout, §3 key schedule).
type specOut struct {
	body, kHdr, mac, kPayload []byte
	nonces, chunks            [][]byte
	file                      []byte
}

func specFile(t *testing.T, dk, salt []byte, kind, id, ver, wdk string, cs int, pt []byte) specOut {
	t.Helper()
	var o specOut
	var b []byte
	b = append(b, 0x89, 'P', 'P', 'M', 'L', '\r', '\n', 0x1a, 0x01, 0x01)
	b = binary.BigEndian.AppendUint32(b, uint32(cs))
	b = append(b, salt...)
	b = append(b, byte(len(kind)))
	b = append(b, kind...)
	for _, s := range []string{id, ver, wdk} {
		b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
		b = append(b, s...)
	}
	o.body = b
	var err error
	if o.kHdr, err = hkdf.Key(sha256.New, dk, salt, "ppml/stream/v1 header", 32); err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, o.kHdr)
	m.Write(o.body)
	o.mac = m.Sum(nil)
	if o.kPayload, err = hkdf.Key(sha256.New, dk, salt, "ppml/stream/v1 payload\x00"+string(o.mac), 32); err != nil {
		t.Fatal(err)
	}
	blk, _ := aes.NewCipher(o.kPayload)
	gcm, _ := cipher.NewGCM(blk)
	n := max(1, (len(pt)+cs-1)/cs)
	o.file = append(append([]byte{}, o.body...), o.mac...)
	for i := range n {
		nonce := make([]byte, 12)
		binary.BigEndian.PutUint64(nonce[3:11], uint64(i))
		if i == n-1 {
			nonce[11] = 1
		}
		c := gcm.Seal(nil, nonce, pt[i*cs:min(len(pt), (i+1)*cs)], nil)
		o.nonces = append(o.nonces, nonce)
		o.chunks = append(o.chunks, c)
		o.file = append(o.file, c...)
	}
	return o
}

func TestKnownAnswerVectors(t *testing.T) {
	for _, v := range docVectors(t) {
		t.Run(v.name, func(t *testing.T) {
			dk := v.hex(t, "DK")
			if got := base64.StdEncoding.EncodeToString(dk); got != v.get(t, "DKS") {
				t.Fatalf("DKS %s is not base64(DK) %s", v.get(t, "DKS"), got)
			}
			salt := v.hex(t, "salt")
			kind, id, ver, wdk := v.text(t, "kind"), v.text(t, "id"), v.text(t, "version"), v.text(t, "WDK")
			cs, err := strconv.Atoi(v.get(t, "chunk_size"))
			if err != nil {
				t.Fatal(err)
			}
			pt := v.hex(t, "plaintext")
			o := specFile(t, dk, salt, kind, id, ver, wdk, cs, pt)

			// Every printed value equals what the document's procedure gives.
			want := map[string][]byte{"body": o.body, "K_hdr": o.kHdr, "mac": o.mac, "K_payload": o.kPayload, "file": o.file}
			for i := range o.chunks {
				want[fmt.Sprintf("nonce_%d", i)] = o.nonces[i]
				want[fmt.Sprintf("chunk_%d", i)] = o.chunks[i]
			}
			fileSum := sha256.Sum256(o.file)
			want["SHA-256(file)"] = fileSum[:]
			for k, w := range want {
				if got := v.hex(t, k); !bytes.Equal(got, w) {
					t.Errorf("%s: printed %x, the procedure of §2–§3 gives %x", k, got, w)
				}
			}
			for _, k := range v.order {
				if (strings.HasPrefix(k, "chunk_") && k != "chunk_size" || strings.HasPrefix(k, "nonce_")) && want[k] == nil {
					t.Errorf("printed %s, but the plaintext makes %d chunks", k, len(o.chunks))
				}
			}

			// Encrypt with the vector's salt writes exactly these bytes.
			key := keysource.DataKey{Plaintext: v.get(t, "DKS"), Wrapped: wdk, Ref: keysource.KeyRef{Kind: kind, ID: id, Version: ver}}
			var s [SaltSize]byte
			copy(s[:], salt)
			for _, w := range []int{1, 2} {
				var buf bytes.Buffer
				if _, err := encryptSalted(&buf, bytes.NewReader(pt), key, &Options{ChunkSize: cs, Workers: w}, &s); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(buf.Bytes(), o.file) {
					t.Fatalf("Encrypt (workers %d) wrote\n%x\nthe vector is\n%x", w, buf.Bytes(), o.file)
				}
			}

			// Decrypt and NewReaderAt read it back.
			file := v.hex(t, "file")
			var out bytes.Buffer
			h, n, err := Decrypt(&out, bytes.NewReader(file), keyFor(key), nil)
			if err != nil || n != int64(len(pt)) || !bytes.Equal(out.Bytes(), pt) || h.Key != key.Ref || h.WrappedKey != wdk || h.ChunkSize != cs {
				t.Fatalf("Decrypt: n=%d err=%v header=%+v", n, err, h)
			}
			ra, err := NewReaderAt(bytes.NewReader(file), int64(len(file)), keyFor(key))
			if err != nil || ra.Size() != int64(len(pt)) {
				t.Fatalf("NewReaderAt: %v", err)
			}
			got, err := io.ReadAll(io.NewSectionReader(ra, 0, ra.Size()))
			if err != nil || !bytes.Equal(got, pt) {
				t.Fatalf("ReaderAt: %v", err)
			}
		})
	}
}

// anyHeader hands out the data key whatever the header says, so that only
// the header MAC stands between an edited header and a successful read (a
// key callback that rejected the edit would hide a missing MAC check).
func anyHeader(dks string) KeyFunc { return func(*Header) (string, error) { return dks, nil } }

// TestHeaderEditsFailTheMAC edits every field of a header one at a time,
// and each edit fails with the header MAC error, on the streaming and the
// random-access path, whether the MAC is left as it was or recomputed by
// someone without the data key.
func TestHeaderEditsFailTheMAC(t *testing.T) {
	pt := bytes.Repeat([]byte("ppml header test "), 20)
	ct := encrypt(t, pt, &Options{ChunkSize: 128})
	hd, err := ReadHeader(bytes.NewReader(ct))
	if err != nil {
		t.Fatal(err)
	}
	hs := hd.Size()
	payload := ct[hs:]
	// Offsets of the variable fields in this header.
	kindOff := fixedLen + 1
	idOff := kindOff + len(testKey.Ref.Kind) + 2
	verOff := idOff + len(testKey.Ref.ID) + 2
	wdkOff := verOff + len(testKey.Ref.Version) + 2
	edits := map[string]func(body []byte) []byte{
		"chunk_size": func(b []byte) []byte { binary.BigEndian.PutUint32(b[10:14], 256); return b },
		"salt":       func(b []byte) []byte { b[14+7] ^= 0x40; return b },
		"kind":       func(b []byte) []byte { b[kindOff] ^= 0x01; return b },
		"id":         func(b []byte) []byte { b[idOff+4] ^= 0x01; return b },
		"version":    func(b []byte) []byte { b[verOff] = '8'; return b },
		"WDK":        func(b []byte) []byte { b[wdkOff+2] ^= 0x20; return b },
		"id longer": func(b []byte) []byte {
			// key-1234 -> key-12345, with the length field and the rest moved along.
			var nb []byte
			nb = append(nb, b[:idOff-2]...)
			nb = binary.BigEndian.AppendUint16(nb, uint16(len(testKey.Ref.ID)+1))
			nb = append(nb, testKey.Ref.ID+"5"...)
			return append(nb, b[idOff+len(testKey.Ref.ID):]...)
		},
	}
	wrongMAC := map[string]func(body []byte) []byte{
		"left as is": func([]byte) []byte { return append([]byte{}, hd.mac...) },
		"recomputed under another data key": func(b []byte) []byte {
			k, _ := hkdf.Key(sha256.New, bytes.Repeat([]byte{7}, 32), b[14:14+SaltSize], "ppml/stream/v1 header", 32)
			m := hmac.New(sha256.New, k)
			m.Write(b)
			return m.Sum(nil)
		},
		"recomputed as plain SHA-256": func(b []byte) []byte { s := sha256.Sum256(b); return s[:] },
	}
	for fname, edit := range edits {
		for mname, mac := range wrongMAC {
			body := edit(append([]byte{}, hd.body...))
			if bytes.Equal(body, hd.body) {
				t.Fatalf("%s: the edit changed nothing", fname)
			}
			file := append(append(body, mac(body)...), payload...)
			if fname == "id longer" {
				// Sanity: the edited header still parses, with the new id.
				if h2, err := ReadHeader(bytes.NewReader(file)); err != nil || h2.Key.ID != testKey.Ref.ID+"5" {
					t.Fatalf("%s: edited header does not parse as intended: %v", fname, err)
				}
			}
			_, _, err := Decrypt(io.Discard, bytes.NewReader(file), anyHeader(testKey.Plaintext), nil)
			if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "header MAC mismatch") {
				t.Errorf("%s edited, MAC %s: Decrypt: %v, want the header MAC error", fname, mname, err)
			}
			_, err = NewReaderAt(bytes.NewReader(file), int64(len(file)), anyHeader(testKey.Plaintext))
			if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "header MAC mismatch") {
				t.Errorf("%s edited, MAC %s: NewReaderAt: %v, want the header MAC error", fname, mname, err)
			}
		}
	}
	// The MAC itself edited.
	bad := append([]byte{}, ct...)
	bad[hs-1] ^= 0x01
	if _, _, err := Decrypt(io.Discard, bytes.NewReader(bad), anyHeader(testKey.Plaintext), nil); !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "header MAC mismatch") {
		t.Errorf("MAC edited: %v", err)
	}
	// The unedited file reads with the same permissive callback: the
	// failures above come from the edits.
	if _, _, err := Decrypt(io.Discard, bytes.NewReader(ct), anyHeader(testKey.Plaintext), nil); err != nil {
		t.Fatalf("unedited file: %v", err)
	}
}

// TestFormatRejectedBeforeKeys: magic, version, suite and an out-of-range
// chunk size are rejected by the parser, before any key is asked for.
func TestFormatRejectedBeforeKeys(t *testing.T) {
	ct := encrypt(t, []byte("x"), nil)
	never := func(*Header) (string, error) {
		t.Error("key requested for a malformed header")
		return "", errors.New("no")
	}
	for name, mut := range map[string]func([]byte){
		"magic":      func(b []byte) { b[0] = 0x88 },
		"version":    func(b []byte) { b[8] = 0 },
		"suite":      func(b []byte) { b[9] = 2 },
		"chunk_size": func(b []byte) { binary.BigEndian.PutUint32(b[10:14], MinChunkSize-1) },
		"kind length": func(b []byte) {
			b[fixedLen] = byte(len(testKey.Ref.Kind) + 200) // beyond the file's end
		},
	} {
		b := append([]byte{}, ct...)
		mut(b)
		if _, _, err := Decrypt(io.Discard, bytes.NewReader(b), never, nil); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: Decrypt: %v, want ErrFormat", name, err)
		}
	}
}
