package sim

import (
	"crypto/rsa"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync"

	"github.com/ppml-project/ppml/enclave/sigstruct"
)

// fileEnclaveKey is the simulated ISV's enclave signing key (RSA-3072,
// exponent 3), created on first use: generating one takes a second or two.
const fileEnclaveKey = "enclave-key.pem"

var enclaveKeyMu sync.Mutex

// EnclaveKey returns the simulated ISV's enclave signing key, creating it
// in the simulation directory the first time.
func (s *SimTEE) EnclaveKey() (*rsa.PrivateKey, error) {
	enclaveKeyMu.Lock()
	defer enclaveKeyMu.Unlock()
	path := filepath.Join(s.dir, fileEnclaveKey)
	k, err := sigstruct.LoadKeyFile(path)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if k, err = sigstruct.GenerateKey(); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	if err := sigstruct.WriteKeyFile(path, k); err != nil {
		return nil, fmt.Errorf("sim: %w", err)
	}
	return k, nil
}

// SignEnclave returns the SIGSTRUCT (a Gramine .sig file) of an enclave
// with these fields, signed with EnclaveKey, and the Measurements a quote
// of that enclave carries (MRENCLAVE, MRSIGNER, ISVPRODID, ISVSVN, debug).
func (s *SimTEE) SignEnclave(f sigstruct.Fields) ([]byte, Measurements, error) {
	k, err := s.EnclaveKey()
	if err != nil {
		return nil, Measurements{}, err
	}
	sig, err := sigstruct.Sign(k, f)
	if err != nil {
		return nil, Measurements{}, fmt.Errorf("sim: %w", err)
	}
	return sig, Measurements{
		MREnclave: f.MREnclave, MRSigner: sigstruct.MRSigner(&k.PublicKey),
		ISVProdID: f.ISVProdID, ISVSVN: f.ISVSVN, Debug: f.Attributes.Flags&sigstruct.FlagDebug != 0,
	}, nil
}
