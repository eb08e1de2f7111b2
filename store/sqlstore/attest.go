package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/ppml-project/ppml/store"
)

var _ store.AttestationStore = (*DB)(nil)

func (s *DB) CreatePolicy(ctx context.Context, p store.AttestPolicy) error {
	defer s.writeLock()()
	_, err := s.db.ExecContext(ctx, s.q(`INSERT INTO attest_policies (policy_id, owner, origin, document, created_at, mac) VALUES (?, ?, ?, ?, ?, ?)`),
		p.ID, p.Owner, p.Origin, string(p.Document), ms(p.CreatedAt), p.MAC)
	if isUniqueViolation(err) {
		return fmt.Errorf("attestation policy %s: %w", p.ID, store.ErrExists)
	}
	return err
}

func (s *DB) scanPolicy(row scanner) (store.AttestPolicy, error) {
	var (
		p       store.AttestPolicy
		doc     string
		created int64
	)
	err := row.Scan(&p.ID, &p.Owner, &p.Origin, &doc, &created, &p.MAC)
	p.Document, p.CreatedAt = []byte(doc), fromMS(created)
	return p, notFound(err, "attestation policy")
}

func (s *DB) GetPolicy(ctx context.Context, owner, id string) (store.AttestPolicy, error) {
	return s.scanPolicy(s.db.QueryRowContext(ctx, s.q(`SELECT `+policyColumns+`
		FROM attest_policies WHERE policy_id = ? AND owner = ?`), id, owner))
}

func (s *DB) LatestPolicy(ctx context.Context, owner string) (store.AttestPolicy, error) {
	return s.scanPolicy(s.db.QueryRowContext(ctx, s.q(`SELECT `+policyColumns+`
		FROM attest_policies WHERE owner = ? ORDER BY seq DESC LIMIT 1`), owner))
}

const policyColumns = `policy_id, owner, origin, document, created_at, mac`

func (s *DB) BackfillPolicyMACs(ctx context.Context, sum func(store.AttestPolicy) ([]byte, error)) (int, error) {
	defer s.writeLock()()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT `+policyColumns+` FROM attest_policies WHERE mac IS NULL`)
	if err != nil {
		return 0, err
	}
	var ps []store.AttestPolicy
	for rows.Next() {
		p, err := s.scanPolicy(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		ps = append(ps, p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, p := range ps {
		mac, err := sum(p)
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE attest_policies SET mac = ? WHERE policy_id = ? AND mac IS NULL`), mac, p.ID); err != nil {
			return 0, err
		}
	}
	return len(ps), tx.Commit()
}

// SpendNonce is a replay record (app = owner, nonce = "attest-nonce:" +
// nonce, no timestamp) written through the replay group commit, so it
// shares commits with concurrent requests. Its time is the nonce's expiry
// and a duplicate is never refreshed: the record outlives the nonce by the
// replay retention PurgeRequests is called with.
func (s *DB) SpendNonce(ctx context.Context, nonce, owner string, expiresAt time.Time) (bool, error) {
	fresh, _, err := s.replay.record(ctx, replayRecord{app: owner, nonce: "attest-nonce:" + nonce, now: ms(expiresAt), notBefore: 0})
	return fresh, err
}

func (s *DB) PurgeNonces(ctx context.Context, before time.Time) error {
	defer s.writeLock()()
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM attest_nonces WHERE expires_at < ?`), ms(before))
	return err
}
