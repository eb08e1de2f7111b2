package enclave

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// Occlum's /dev/sgx ioctls (bigdl-attestation-protocol.md §8).
const (
	sgxIocGetDCAPQuoteSize = 0x80047307
	sgxIocGenDCAPQuote     = 0xC0187308
)

// Occlum returns the quoter of Occlum's /dev/sgx device (dev "" = /dev/sgx).
// It asks for a quote over the given report data at attestation time,
// unlike BigDL's reader of a quote file made earlier.
func Occlum(dev string) (Quoter, error) {
	if dev == "" {
		dev = "/dev/sgx"
	}
	if _, err := os.Stat(dev); err != nil {
		return nil, fmt.Errorf("%s is missing: not inside an Occlum enclave", dev)
	}
	return &occlum{dev: dev}, nil
}

type occlum struct{ dev string }

func (o *occlum) Simulated() bool  { return false }
func (o *occlum) Describe() string { return "Occlum " + o.dev }

func (o *occlum) Quote(rd [64]byte) ([]byte, error) {
	f, err := os.Open(o.dev)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var size uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), sgxIocGetDCAPQuoteSize, uintptr(unsafe.Pointer(&size))); e != 0 {
		return nil, fmt.Errorf("SGXIOC_GET_DCAP_QUOTE_SIZE: %v", e)
	}
	if size == 0 || size > 1<<20 {
		return nil, fmt.Errorf("Occlum reported a quote size of %d bytes", size)
	}
	buf := make([]byte, size)
	arg := struct {
		reportData *[64]byte
		quoteLen   *uint32
		quoteBuf   *byte
	}{&rd, &size, &buf[0]}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), sgxIocGenDCAPQuote, uintptr(unsafe.Pointer(&arg))); e != 0 {
		return nil, fmt.Errorf("SGXIOC_GEN_DCAP_QUOTE: %v", e)
	}
	return buf[:size], nil
}
