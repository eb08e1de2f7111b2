package bigdl

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"testing"
)

// nativeEncrypt is an independent whole-buffer writer of the layout in
// bigdl-data-format.md §5: IV || AES-CBC(PKCS#7) under the decoded key.
func nativeEncrypt(t *testing.T, keyText string, pt, iv []byte) []byte {
	key, _ := base64.StdEncoding.DecodeString(keyText)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	pad := aes.BlockSize - len(pt)%aes.BlockSize
	padded := append(append([]byte{}, pt...), bytes.Repeat([]byte{byte(pad)}, pad)...)
	if iv == nil {
		iv = make([]byte, aes.BlockSize)
		rand.Read(iv)
	}
	out := append([]byte{}, iv...)
	ct := make([]byte, len(padded))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(ct, padded)
	return append(out, ct...)
}

func TestDecryptNative(t *testing.T) {
	for _, keyLen := range []int{16, 24, 32} {
		k := make([]byte, keyLen)
		rand.Read(k)
		keyText := base64.StdEncoding.EncodeToString(k)
		for _, size := range []int{0, 1, 15, 16, 17, 1 << 20, 1<<20 + 5, 3<<20 - 16} {
			pt := make([]byte, size)
			rand.Read(pt)
			var out bytes.Buffer
			n, err := DecryptNative(&out, bytes.NewReader(nativeEncrypt(t, keyText, pt, nil)), keyText)
			if err != nil || n != int64(size) || !bytes.Equal(out.Bytes(), pt) {
				t.Fatalf("key %d, size %d: n=%d err=%v", keyLen, size, n, err)
			}
		}
	}
	keyText := base64.StdEncoding.EncodeToString(make([]byte, 16))
	// A fixed IV: a wrong key gives valid padding for some IVs (about 1 in
	// 256); with this one it does not, so the test is deterministic.
	ct := nativeEncrypt(t, keyText, []byte("hello"), make([]byte, aes.BlockSize))
	other := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 16))
	for name, c := range map[string]struct {
		ct  []byte
		key string
	}{
		"wrong key":       {ct, other},
		"truncated":       {ct[:len(ct)-3], keyText},
		"only an IV":      {ct[:16], keyText},
		"short":           {ct[:5], keyText},
		"bad key text":    {ct, "not base64"},
		"key of 10 bytes": {ct, base64.StdEncoding.EncodeToString(make([]byte, 10))},
	} {
		if _, err := DecryptNative(&bytes.Buffer{}, bytes.NewReader(c.ct), c.key); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
