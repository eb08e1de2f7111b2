package stream

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
		if _, err := Encrypt(io.Discard, bytes.NewReader(pt), testKey, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecrypt(b *testing.B) {
	var ct bytes.Buffer
	Encrypt(&ct, bytes.NewReader(make([]byte, benchSize)), testKey, nil)
	b.SetBytes(benchSize)
	for b.Loop() {
		if _, _, err := Decrypt(io.Discard, bytes.NewReader(ct.Bytes()), keyFor(testKey), nil); err != nil {
			b.Fatal(err)
		}
	}
}
