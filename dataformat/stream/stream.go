package stream

import (
	"bufio"
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/ppml-project/ppml/dataformat/keysource"
)

// Options tune encryption and decryption. The zero value is usable.
type Options struct {
	// ChunkSize is the plaintext chunk size for encryption (default 64 KiB).
	ChunkSize int
	// Workers is the number of goroutines sealing/opening chunks
	// (default GOMAXPROCS).
	Workers int
	// Progress, if set, is called with the number of input bytes consumed,
	// from a single goroutine.
	Progress func(n int64)
}

func (o *Options) workers() int {
	if o != nil && o.Workers > 0 {
		return o.Workers
	}
	return runtime.GOMAXPROCS(0)
}

func (o *Options) progress(n int64) {
	if o != nil && o.Progress != nil {
		o.Progress(n)
	}
}

// KeyFunc returns the data-key string for a header (typically by calling a
// keysource.Source's OpenDataKey with h.WrappedKey and h.Key).
type KeyFunc func(h *Header) (dataKey string, err error)

// KeyFromSource adapts a keysource.Source (with no context) to a KeyFunc.
func KeyFromSource(open func(wrapped string, ref keysource.KeyRef) (string, error)) KeyFunc {
	return func(h *Header) (string, error) { return open(h.WrappedKey, h.Key) }
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

// nonce builds the 12-byte nonce: 11-byte big-endian chunk counter followed
// by 0x01 for the last chunk and 0x00 otherwise.
func nonce(dst *[12]byte, index uint64, last bool) {
	*dst = [12]byte{}
	binary.BigEndian.PutUint64(dst[3:11], index)
	if last {
		dst[11] = 1
	}
}

type batch struct {
	first  uint64 // index of its first chunk
	in     []byte
	out    []byte
	last   bool // contains the file's final chunk
	inLen  int
	outLen int
	err    error
	done   chan struct{}
}

// pipeline reads batches in order on the calling goroutine, processes them
// on `workers` goroutines and writes them in order on another goroutine.
// At most `inflight` batches exist at any time, bounding memory.
func pipeline(workers, inflight, inCap, outCap int,
	fill func(b *batch) (more bool, err error),
	work func(b *batch),
	flush func(b *batch) error) error {
	// Batches are created lazily (small inputs need only one) and recycled
	// through a package-level pool across calls.
	pool := make(chan *batch, inflight)
	created := 0
	defer func() {
		for {
			select {
			case b := <-pool:
				batchPool.Put(b)
			default:
				return
			}
		}
	}()
	jobs := make(chan *batch, inflight)
	order := make(chan *batch, inflight)
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range jobs {
				if !failed.Load() {
					work(b)
				} else {
					b.err = errSkipped
				}
				close(b.done)
			}
		}()
	}
	werr := make(chan error, 1)
	go func() {
		var err error
		for b := range order {
			<-b.done
			if err == nil {
				if b.err != nil {
					err = b.err
				} else {
					err = flush(b)
				}
				if err != nil {
					failed.Store(true)
				}
			}
			pool <- b
		}
		werr <- err
	}()
	var rerr error
	for !failed.Load() {
		var b *batch
		select {
		case b = <-pool:
		default:
			if created < inflight {
				created++
				b = getBatch(inCap, outCap)
			} else {
				b = <-pool
			}
		}
		b.done = make(chan struct{})
		b.err = nil
		more, err := fill(b)
		if err != nil {
			rerr = err
			pool <- b
			break
		}
		jobs <- b
		order <- b
		if !more {
			break
		}
	}
	close(jobs)
	close(order)
	wg.Wait()
	err := <-werr
	if rerr != nil {
		return rerr
	}
	return err
}

var batchPool sync.Pool

func getBatch(inCap, outCap int) *batch {
	if b, ok := batchPool.Get().(*batch); ok && cap(b.in) >= inCap && cap(b.out) >= outCap {
		return b
	}
	return &batch{in: make([]byte, inCap), out: make([]byte, outCap)}
}

var errSkipped = errors.New("skipped after an earlier error")

const batchBytes = 1 << 20

func batchChunks(chunkSize int) int { return max(1, batchBytes/chunkSize) }

// Encrypt encrypts src to dst with the given data key (as returned by a
// keysource.Source, whose Ref and Wrapped go into the header). It returns
// the number of plaintext bytes. On error dst holds an incomplete file that
// must be discarded.
func Encrypt(dst io.Writer, src io.Reader, key keysource.DataKey, opt *Options) (int64, error) {
	return encryptSalted(dst, src, key, opt, nil)
}

func encryptSalted(dst io.Writer, src io.Reader, key keysource.DataKey, opt *Options, salt *[SaltSize]byte) (int64, error) {
	cs := DefaultChunkSize
	if opt != nil && opt.ChunkSize != 0 {
		cs = opt.ChunkSize
	}
	h, err := newHeader(cs, key, salt)
	if err != nil {
		return 0, err
	}
	pk, err := h.seal(key.Plaintext)
	if err != nil {
		return 0, err
	}
	aead, err := newAEAD(pk)
	if err != nil {
		return 0, err
	}
	if _, err := dst.Write(h.Bytes()); err != nil {
		return 0, err
	}
	bc := batchChunks(cs)
	br := bufio.NewReaderSize(src, 64<<10)
	var next uint64
	var total int64
	first := true
	fill := func(b *batch) (bool, error) {
		n, err := io.ReadFull(br, b.in[:bc*cs])
		total += int64(n)
		b.inLen = n
		b.first = next
		switch {
		case err == nil:
			if _, perr := br.Peek(1); perr == io.EOF {
				b.last = true
			} else if perr != nil {
				return false, perr
			} else {
				b.last = false
			}
		case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
			if n == 0 && !first {
				return false, errors.New("stream: input ended unexpectedly")
			}
			b.last = true
		default:
			return false, fmt.Errorf("reading input: %w", err)
		}
		first = false
		next += uint64(max(1, (n+cs-1)/cs))
		return !b.last, nil
	}
	work := func(b *batch) {
		var nc [12]byte
		in := b.in[:b.inLen]
		out := b.out[:0]
		idx := b.first
		for {
			m := min(len(in), cs)
			last := b.last && m == len(in)
			nonce(&nc, idx, last)
			out = aead.Seal(out, nc[:], in[:m], nil)
			in = in[m:]
			idx++
			if len(in) == 0 {
				break
			}
		}
		b.outLen = len(out)
	}
	flush := func(b *batch) error {
		if _, err := dst.Write(b.out[:b.outLen]); err != nil {
			return err
		}
		opt.progress(int64(b.inLen))
		return nil
	}
	err = pipeline(opt.workers(), 2*opt.workers()+2, bc*cs, bc*(cs+TagSize), fill, work, flush)
	return total, err
}

func chunkErr(idx uint64, last bool) error {
	what := ""
	if last {
		what = " (as the final chunk)"
	}
	return fmt.Errorf("%w: chunk %d%s does not authenticate: the file was modified, truncated, extended, reordered or spliced", ErrAuth, idx, what)
}

// Decrypt reads an encrypted file from src, obtains the data key with
// keyFor, verifies the header and decrypts to dst, returning the header and
// the number of plaintext bytes written.
//
// Every chunk is authenticated before its plaintext is written, so all
// output is authentic; but an error (e.g. truncation, detected at the end)
// can come after earlier chunks were written, so on error the output must
// be discarded: write it with package atomicfile, as the tree tool does.
func Decrypt(dst io.Writer, src io.Reader, keyFor KeyFunc, opt *Options) (*Header, int64, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	h, err := ReadHeader(br)
	if err != nil {
		return nil, 0, err
	}
	dk, err := keyFor(h)
	if err != nil {
		return h, 0, err
	}
	pk, err := h.open(dk)
	if err != nil {
		return h, 0, err
	}
	aead, err := newAEAD(pk)
	if err != nil {
		return h, 0, err
	}
	opt.progress(int64(h.Size()))
	cs := h.ChunkSize
	ccs := cs + TagSize
	bc := batchChunks(cs)
	var next uint64
	first := true
	fill := func(b *batch) (bool, error) {
		n, err := io.ReadFull(br, b.in[:bc*ccs])
		b.inLen = n
		b.first = next
		switch {
		case err == nil:
			if _, perr := br.Peek(1); perr == io.EOF {
				b.last = true
			} else if perr != nil {
				return false, perr
			} else {
				b.last = false
			}
		case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
			if n == 0 {
				if first {
					return false, fmt.Errorf("%w: no encrypted payload after the header: the file is truncated", ErrAuth)
				}
				return false, errors.New("stream: input ended unexpectedly")
			}
			b.last = true
		default:
			return false, fmt.Errorf("reading input: %w", err)
		}
		first = false
		next += uint64((n + ccs - 1) / ccs)
		return !b.last, nil
	}
	var total atomic.Int64
	work := func(b *batch) {
		var nc [12]byte
		in := b.in[:b.inLen]
		out := b.out[:0]
		idx := b.first
		for len(in) > 0 {
			m := min(len(in), ccs)
			last := b.last && m == len(in)
			if m < TagSize {
				b.err = fmt.Errorf("%w: final chunk %d is %d bytes, shorter than a tag: the file is truncated", ErrAuth, idx, m)
				return
			}
			if last && m == TagSize && idx != 0 {
				b.err = fmt.Errorf("%w: empty final chunk %d after non-empty chunks (not written by ppml)", ErrFormat, idx)
				return
			}
			nonce(&nc, idx, last)
			var err error
			out, err = aead.Open(out, nc[:], in[:m], nil)
			if err != nil {
				b.err = chunkErr(idx, last)
				return
			}
			in = in[m:]
			idx++
		}
		b.outLen = len(out)
	}
	flush := func(b *batch) error {
		if _, err := dst.Write(b.out[:b.outLen]); err != nil {
			return err
		}
		total.Add(int64(b.outLen))
		opt.progress(int64(b.inLen))
		return nil
	}
	err = pipeline(opt.workers(), 2*opt.workers()+2, bc*ccs, bc*cs, fill, work, flush)
	return h, total.Load(), err
}

// EncryptedSize returns the size of an encrypted file for a plaintext of n
// bytes, given the header size and chunk size.
func EncryptedSize(headerSize, chunkSize int, n int64) int64 {
	chunks := max(1, (n+int64(chunkSize)-1)/int64(chunkSize))
	return int64(headerSize) + n + chunks*TagSize
}
