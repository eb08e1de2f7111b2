package bigdl

import (
	"bytes"
	"io"
	"testing"
)

const benchSize = 64 << 20

func BenchmarkEncrypt(b *testing.B) {
	pt := make([]byte, benchSize)
	b.SetBytes(benchSize)
	for b.Loop() {
		if _, err := Encrypt(io.Discard, bytes.NewReader(pt), vecKey, vecEDK); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	var ct bytes.Buffer
	Encrypt(&ct, bytes.NewReader(make([]byte, benchSize)), vecKey, vecEDK)
	r := bytes.NewReader(ct.Bytes())
	b.SetBytes(benchSize)
	for b.Loop() {
		if _, err := Decrypt(io.Discard, r, int64(ct.Len()), StaticKey(vecKey, vecEDK)); err != nil {
			b.Fatal(err)
		}
	}
}
