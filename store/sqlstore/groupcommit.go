package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"runtime"
	"slices"
	"strings"
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

// retention is how far back a record stays binding: an existing record
// seen before now - retention (= notBefore) is refreshed, not refused.
func (r replayRecord) retention() int64 { return r.now - r.notBefore }

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

// replayInsert inserts the records of a batch (n rows of (ts, app_id,
// nonce, seen_at)) in one statement, or refreshes those old enough to have
// left the window (seen_at older than excluded.seen_at minus the one
// argument after the rows, the retention); RETURNING names the rows it
// inserted or refreshed, the fresh ones: a recent duplicate changes no row
// and is not returned.
func replayInsert(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO replay_records (ts, app_id, nonce, seen_at) VALUES `)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?)")
	}
	b.WriteString(` ON CONFLICT (ts, app_id, nonce) DO UPDATE SET seen_at = excluded.seen_at
		WHERE replay_records.seen_at < excluded.seen_at - ? RETURNING ts, app_id, nonce`)
	return b.String()
}

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
		// Let the requests that are ready to run reach the queue first: the
		// send that woke this goroutine also made it the next to run, and
		// on a server with one CPU (GOMAXPROCS=1, a pod's CPU limit) every
		// batch was then one or two records, each paying a commit and an
		// fsync. With nothing else runnable this returns at once.
		runtime.Gosched()
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
	// row locks on conflicting keys, in the order of the rows inserted):
	// concurrent batches cannot deadlock.
	slices.SortStableFunc(batch, func(a, b *replayWait) int {
		return cmp.Or(cmp.Compare(a.rec.ts, b.rec.ts), cmp.Compare(a.rec.app, b.rec.app), cmp.Compare(a.rec.nonce, b.rec.nonce))
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
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := g.insert(ctx, tx, batch); err != nil {
		return err
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

type replayKey struct{ ts, app, nonce string }

// insert writes the batch (sorted) with one statement per retention (the
// eHSM records of a batch share one; each spent nonce has its own) and
// sets fresh on the records the database inserted or refreshed. A record
// that repeats an earlier one of the batch is not fresh, as it would not be
// after the earlier one's own commit.
func (g *groupCommit) insert(ctx context.Context, tx *sql.Tx, batch []*replayWait) error {
	byKey := make(map[replayKey]*replayWait, len(batch))
	groups := map[int64][]*replayWait{}
	var retentions []int64
	for _, w := range batch {
		k := replayKey{w.rec.ts, w.rec.app, w.rec.nonce}
		if _, dup := byKey[k]; dup {
			continue
		}
		byKey[k] = w
		r := w.rec.retention()
		if _, ok := groups[r]; !ok {
			retentions = append(retentions, r)
		}
		groups[r] = append(groups[r], w)
	}
	for _, r := range retentions {
		rows := groups[r]
		st, err := g.s.stmt(ctx, g.s.q(replayInsert(len(rows))))
		if err != nil {
			return err
		}
		args := make([]any, 0, 4*len(rows)+1)
		for _, w := range rows {
			args = append(args, w.rec.ts, w.rec.app, w.rec.nonce, w.rec.now)
		}
		args = append(args, r)
		res, err := tx.StmtContext(ctx, st).QueryContext(ctx, args...)
		if err != nil {
			return err
		}
		for res.Next() {
			var k replayKey
			if err := res.Scan(&k.ts, &k.app, &k.nonce); err != nil {
				res.Close()
				return err
			}
			if w := byKey[k]; w != nil {
				w.fresh = true
			}
		}
		if err := res.Close(); err != nil {
			return err
		}
		if err := res.Err(); err != nil {
			return err
		}
	}
	return nil
}
