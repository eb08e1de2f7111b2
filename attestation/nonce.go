package attestation

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/ppml-project/ppml/fault"
)

// Nonces are stateless: issuing one writes nothing, using one writes once.
//
//	nonce = random (12) | expiry (8, Unix ms, big endian) | tag (12)
//	tag   = the first 12 bytes of the row MAC (store/rowmac; domain
//	        "attest-nonce") over the app id, the random part and the expiry
//
// The MAC key is the one all replicas share (root-wrapped in the store), so
// a nonce issued by one replica verifies on every other and after restarts.
// Attest checks the tag and the expiry in memory, then spends the nonce
// (store SpendNonce: one durable write, group-committed with concurrent
// requests, refused when already recorded on any replica), before the quote
// is verified: single use holds across replicas and restarts as with a stored
// nonce, a forged or expired one costs no write, and the nonce request
// itself waits on no fsync. A 96-bit tag cannot be guessed online.
const (
	nonceRandom = 12
	nonceTagLen = 12
	nonceDomain = "attest-nonce"
)

// Nonce is a single-use challenge.
type Nonce struct {
	Value     []byte    `json:"nonce"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (s *Service) nonceTag(ctx context.Context, appID string, body []byte) ([]byte, error) {
	exp := int64(binary.BigEndian.Uint64(body[nonceRandom:]))
	mac, err := s.rows.Sum(ctx, nonceDomain, appID, hex.EncodeToString(body[:nonceRandom]), strconv.FormatInt(exp, 10))
	if err != nil {
		return nil, err
	}
	return mac[:nonceTagLen], nil
}

// NewNonce creates a nonce for appID, valid for NonceTTL and usable once.
func (s *Service) NewNonce(ctx context.Context, appID string) (*Nonce, error) {
	n := &Nonce{Value: make([]byte, NonceBytes), ExpiresAt: s.now().Add(NonceTTL).UTC().Truncate(time.Millisecond)}
	if _, err := rand.Read(n.Value[:nonceRandom]); err != nil {
		return nil, s.internal("Nonce", err)
	}
	binary.BigEndian.PutUint64(n.Value[nonceRandom:], uint64(n.ExpiresAt.UnixMilli()))
	tag, err := s.nonceTag(ctx, appID, n.Value[:NonceBytes-nonceTagLen])
	if err != nil {
		return nil, s.internal("Nonce", err)
	}
	copy(n.Value[NonceBytes-nonceTagLen:], tag)
	return n, nil
}

// spendNonce accepts a nonce issued to appID, unexpired and never used, and
// records its use; otherwise it returns the Refusal saying which.
func (s *Service) spendNonce(ctx context.Context, appID string, nonce []byte) error {
	unknown := &Refusal{Code: ReasonNonceUnknown, kind: fault.Invalid, Reasons: []string{"the nonce was not issued to this app by this service (unknown, altered, or another app's): get a fresh one from GET /v1/attestation/nonce"}}
	if len(nonce) != NonceBytes {
		return unknown
	}
	body := nonce[:NonceBytes-nonceTagLen]
	tag, err := s.nonceTag(ctx, appID, body)
	if err != nil {
		return s.internal("checking the nonce", err)
	}
	if !hmac.Equal(tag, nonce[NonceBytes-nonceTagLen:]) {
		return unknown
	}
	exp := time.UnixMilli(int64(binary.BigEndian.Uint64(body[nonceRandom:]))).UTC()
	if !s.now().Before(exp) {
		return &Refusal{Code: ReasonNonceExpired, kind: fault.Invalid, Reasons: []string{fmt.Sprintf("the nonce expired at %s (nonces are valid for %s); get a fresh one", exp.Format(time.RFC3339), NonceTTL)}}
	}
	fresh, err := s.st.SpendNonce(ctx, hex.EncodeToString(nonce), appID, exp)
	if err != nil {
		return s.internal("recording the nonce's use", err)
	}
	if !fresh {
		return &Refusal{Code: ReasonNonceUnknown, kind: fault.Invalid, Reasons: []string{"the nonce was already used: nonces are single use; get a fresh one from GET /v1/attestation/nonce"}}
	}
	return nil
}
