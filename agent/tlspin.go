package agent

import (
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net/http"
	"sync"

	"github.com/ppml-project/ppml/client"
	"github.com/ppml-project/ppml/internal/tlsutil"
	"github.com/ppml-project/ppml/quote/verify"
)

// tlsPin ties the service's self-quote to the TLS connection (RA-TLS): it
// records the public key of each server certificate seen, and once the
// quote named one (report_data[32:64] = SHA-256 of its SPKI), refuses any
// connection with another key.
type tlsPin struct {
	mu       sync.Mutex
	seen     [32]byte
	haveSeen bool
	pinned   bool
	want     [32]byte
}

func pinningClient(caFile string) (*tlsPin, *http.Client, error) {
	hc, err := client.HTTPClient(caFile, 0)
	if err != nil {
		return nil, nil, err
	}
	p := &tlsPin{}
	tr := hc.Transport.(*http.Transport)
	tr.TLSClientConfig.VerifyConnection = p.verify
	return p, hc, nil
}

func (p *tlsPin) verify(cs tls.ConnectionState) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("no server certificate")
	}
	h := tlsutil.KeyHash(cs.PeerCertificates[0])
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.pinned && subtle.ConstantTimeCompare(h[:], p.want[:]) != 1 {
		return errors.New("the server's TLS key is not the one the attestation service's quote binds: refusing the connection")
	}
	p.seen, p.haveSeen = h, true
	return nil
}

// bind checks the second half of the quote's report data against the key
// of the connection that carried the quote and pins it. A zero half
// (the server has no in-enclave key) binds nothing.
func (p *tlsPin) bind(r *verify.Result) (bool, error) {
	rd, err := hex.DecodeString(r.ReportData)
	if err != nil || len(rd) != 64 {
		return false, errors.New("the attestation service's quote has no 64-byte report data")
	}
	var zero [32]byte
	if subtle.ConstantTimeCompare(rd[32:], zero[:]) == 1 {
		return false, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.haveSeen || subtle.ConstantTimeCompare(rd[32:], p.seen[:]) != 1 {
		return false, errors.New("the attestation service's quote binds a TLS key other than the one this connection uses: a relay or a host in the middle (RA-TLS)")
	}
	copy(p.want[:], rd[32:])
	p.pinned = true
	return true, nil
}
