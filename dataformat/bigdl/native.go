package bigdl

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// BigDL's "nativeaescbc" variant (spark.bigdl.encryter.type=nativeaescbc;
// bigdl-data-format.md §5): a 16-byte IV, then AES-CBC with PKCS#5/#7
// padding under the base64-decoded data-key string, and nothing else: no
// header, no MAC. It has no integrity protection at all, so it is read only,
// and only when the caller explicitly accepts that (never written).

// DecryptNative decrypts a nativeaescbc stream with the data-key string
// (for BigDL's plain-text primary key mode: the primary key itself). The
// last block is held back until the end so that its padding is removed, but
// earlier plaintext is written as it is decrypted: nothing authenticates it.
func DecryptNative(dst io.Writer, src io.Reader, dataKey string) (int64, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(dataKey))
	if err != nil {
		return 0, fmt.Errorf("nativeaescbc: the data key is not standard base64: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return 0, fmt.Errorf("nativeaescbc: the data key decodes to %d bytes; AES needs 16, 24 or 32", len(key))
	}
	br := bufio.NewReaderSize(src, 1<<20)
	iv := make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(br, iv); err != nil {
		return 0, fmt.Errorf("nativeaescbc: %w: the file is shorter than its 16-byte IV", ErrFormat)
	}
	dec := cipher.NewCBCDecrypter(block, iv)
	buf := make([]byte, 1<<20)
	var pending []byte // the last decrypted block, written once we know it is not the last
	var written int64
	for {
		n, rerr := io.ReadFull(br, buf)
		if n%aes.BlockSize != 0 {
			return written, fmt.Errorf("nativeaescbc: %w: the ciphertext is not a whole number of 16-byte blocks", ErrFormat)
		}
		if n > 0 {
			dec.CryptBlocks(buf[:n], buf[:n])
			if len(pending) > 0 {
				m, err := dst.Write(pending)
				written += int64(m)
				if err != nil {
					return written, err
				}
			}
			m, err := dst.Write(buf[:n-aes.BlockSize])
			written += int64(m)
			if err != nil {
				return written, err
			}
			pending = append(pending[:0], buf[n-aes.BlockSize:n]...)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return written, rerr
		}
	}
	if len(pending) == 0 {
		return written, fmt.Errorf("nativeaescbc: %w: no ciphertext after the IV", ErrFormat)
	}
	pad := int(pending[len(pending)-1])
	if pad < 1 || pad > aes.BlockSize {
		return written, errors.New("nativeaescbc: bad padding: wrong key, or the file was modified (this format cannot tell which)")
	}
	for _, b := range pending[len(pending)-pad:] {
		if int(b) != pad {
			return written, errors.New("nativeaescbc: bad padding: wrong key, or the file was modified (this format cannot tell which)")
		}
	}
	m, err := dst.Write(pending[:len(pending)-pad])
	return written + int64(m), err
}
