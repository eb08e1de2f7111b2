package sqlstore

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/ppml-project/ppml/store"
)

// Replay records are the one write on the hot path of every signed eHSM
// request. groupCommit writes the records of concurrent requests in one
// transaction, so they share one commit (one fsync on SQLite, one WAL flush
// on PostgreSQL) instead of queueing for one each. The guarantee is the same
// as one commit per request: a request learns whether it is fresh only
// after the transaction holding its record has committed, so nothing is
// answered before its record is durable; two identical records in one
// batch are told apart by the database itself (the second insert changes
// no row, as it would after the first's own commit), and replicas sharing a
// database see each other's committed records exactly as before.
type groupCommit struct {
	s       *DB
	queue   chan *replayWait
	quit    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

type replayRecord struct {
	app, nonce, ts string
	now, notBefore int64 // ms
}

type replayWait struct {
	rec    replayRecord
	fresh  bool
	keyGen int64 // the key generation read in the committing transaction
	err    error
	done   chan struct{}
}

// maxReplayBatch bounds one transaction (and so the latency of its first
// request); under load the batch is whatever arrived during the last commit.
const maxReplayBatch = 256

// replayCommitTimeout bounds one batch transaction: the requests in it have
// their own deadlines, the batch is shared and outlives any one of them.
const replayCommitTimeout = 10 * time.Second

var errStoreClosed = errors.New("store closed")

// recordReplay inserts a record, or refreshes one old enough to have left
// the window; a recent duplicate changes no row.
const recordReplay = `INSERT INTO replay (app_id, nonce, ts, seen_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (app_id, nonce, ts) DO UPDATE SET seen_at = excluded.seen_at WHERE replay.seen_at < ?`

func newGroupCommit(s *DB) *groupCommit {
	g := &groupCommit{s: s, queue: make(chan *replayWait, maxReplayBatch), quit: make(chan struct{}), stopped: make(chan struct{})}
	go g.run()
	return g
}

func (g *groupCommit) record(ctx context.Context, rec replayRecord) (bool, int64, error) {
	w := &replayWait{rec: rec, done: make(chan struct{})}
	select {
	case g.queue <- w:
	case <-g.stopped:
		return false, 0, errStoreClosed
	case <-ctx.Done():
		return false, 0, ctx.Err()
	}
	// Giving up early is safe: the record may still commit, which can only
	// refuse a later copy of this request, never accept one.
	select {
	case <-w.done:
		return w.fresh, w.keyGen, w.err
	case <-g.stopped:
		return false, 0, errStoreClosed
	case <-ctx.Done():
		return false, 0, ctx.Err()
	}
}

func (g *groupCommit) run() {
	defer close(g.stopped)
	for {
		var batch []*replayWait
		select {
		case w := <-g.queue:
			batch = append(batch, w)
		case <-g.quit:
			return
		}
	drain:
		for len(batch) < maxReplayBatch {
			select {
			case w := <-g.queue:
				batch = append(batch, w)
			default:
				break drain
			}
		}
		g.commit(batch)
	}
}

func (g *groupCommit) close() {
	g.once.Do(func() { close(g.quit) })
	<-g.stopped
}

// commit writes a batch in one transaction. If the transaction fails for a
// reason other than the database being away, each record is retried in a
// transaction of its own, so one bad record cannot fail its neighbours.
func (g *groupCommit) commit(batch []*replayWait) {
	ctx, cancel := context.WithTimeout(context.Background(), replayCommitTimeout)
	defer cancel()
	// One lock order for every batch on every replica (PostgreSQL takes
	// row locks on conflicting keys): concurrent batches cannot deadlock.
	slices.SortStableFunc(batch, func(a, b *replayWait) int {
		return cmp.Or(cmp.Compare(a.rec.app, b.rec.app), cmp.Compare(a.rec.nonce, b.rec.nonce), cmp.Compare(a.rec.ts, b.rec.ts))
	})
	err := g.tx(ctx, batch)
	if err != nil && len(batch) > 1 && !store.IsUnavailable(err) {
		for _, w := range batch {
			w.err = g.tx(ctx, []*replayWait{w})
			close(w.done)
		}
		return
	}
	for _, w := range batch {
		w.err = err
		close(w.done)
	}
}

func (g *groupCommit) tx(ctx context.Context, batch []*replayWait) (err error) {
	s := g.s
	defer func() {
		if err != nil { // nothing of a failed transaction counts as fresh
			for _, w := range batch {
				w.fresh = false
			}
		}
	}()
	defer s.writeLock()()
	st, err := s.stmt(ctx, s.q(recordReplay))
	if err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	txst := tx.StmtContext(ctx, st)
	for _, w := range batch {
		res, err := txst.ExecContext(ctx, w.rec.app, w.rec.nonce, w.rec.ts, w.rec.now, w.rec.notBefore)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		w.fresh = n == 1
	}
	// The key generation, read once for the batch: the transaction began
	// after every record in it was queued, so the value counts every key
	// write committed before any of these requests arrived.
	gst, err := s.stmt(ctx, readKeyGeneration)
	if err != nil {
		return err
	}
	var gen int64
	if err := tx.StmtContext(ctx, gst).QueryRowContext(ctx).Scan(&gen); err != nil {
		return err
	}
	for _, w := range batch {
		w.keyGen = gen
	}
	return tx.Commit()
}
