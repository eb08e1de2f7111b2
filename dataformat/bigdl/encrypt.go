package bigdl

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
)

const encBlock = 1 << 20 // multiple of 16

// Encrypt reads all of src and writes it to dst in the COMMON format, with a
// fresh random IV. Reading and CBC encryption run on one goroutine, the HMAC
// and writing on another, so two cores are used; memory is constant (a few
// 1 MiB buffers). It returns the number of plaintext bytes read. On error,
// dst holds an incomplete file that must be discarded.
func Encrypt(dst io.Writer, src io.Reader, dataKey, encryptedDataKey string) (int64, error) {
	var iv [IVSize]byte
	if _, err := rand.Read(iv[:]); err != nil {
		return 0, err
	}
	return encryptIV(dst, src, dataKey, encryptedDataKey, iv)
}

func encryptIV(dst io.Writer, src io.Reader, dataKey, encryptedDataKey string, iv [IVSize]byte) (int64, error) {
	h := Header{EncryptedDataKey: encryptedDataKey, IV: iv}
	hb, err := h.Marshal()
	if err != nil {
		return 0, err
	}
	macKey, aesKey := DeriveKeys(dataKey)
	blk, err := aes.NewCipher(aesKey)
	if err != nil {
		return 0, err
	}
	cbc := cipher.NewCBCEncrypter(blk, iv[:])
	mac := hmac.New(sha256.New, macKey)
	if _, err := dst.Write(hb); err != nil {
		return 0, err
	}

	const nbuf = 4
	free := make(chan []byte, nbuf)
	for range nbuf {
		free <- make([]byte, encBlock+16)
	}
	full := make(chan []byte, nbuf)
	werr := make(chan error, 1)
	go func() {
		var err error
		for b := range full {
			if err == nil {
				mac.Write(b)
				_, err = dst.Write(b)
			}
			free <- b[:cap(b)]
		}
		werr <- err
	}()

	var total int64
	var rerr error
	for {
		b := <-free
		n, err := io.ReadFull(src, b[:encBlock])
		total += int64(n)
		if err == nil {
			cbc.CryptBlocks(b[:n], b[:n])
			full <- b[:n]
			continue
		}
		if err != io.EOF && !errors.Is(err, io.ErrUnexpectedEOF) {
			rerr = err
			free <- b
			break
		}
		// Final piece: n < encBlock bytes, pad to a multiple of 16.
		whole := n / 16 * 16
		last := pad(b[whole:n])
		copy(b[whole:], last)
		m := whole + 16
		cbc.CryptBlocks(b[:m], b[:m])
		full <- b[:m]
		break
	}
	close(full)
	if err := <-werr; err != nil {
		return total, err
	}
	if rerr != nil {
		return total, rerr
	}
	if _, err := dst.Write(mac.Sum(nil)); err != nil {
		return total, err
	}
	return total, nil
}
