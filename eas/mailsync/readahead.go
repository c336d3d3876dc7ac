package mailsync

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/easgate/easgate/backend"
)

// Reading ahead. While a phone pages through a folder (an initial sync of
// thousands of messages comes in windows of at most 512), each round ends
// with more adds due, and the phone asks for them at once. A round that
// leaves adds due starts reading the next window's messages from IMAP as
// soon as its own are read, on a session of its own, so that the next
// round finds them (or the first of them) read: the IMAP server works
// while this round's items are built and stored, while the response
// travels, and while the phone reads it, not only once the next request
// is in.
//
// What is read ahead is the message as it is in IMAP, whatever the
// phone's options: the same read (UID, flags, date, size, and the message
// up to WholeMessageMax) serves any body preference.
//
// The next round uses what was read only if nothing could have made it
// stale for the phone: the round does not repeat a key, asks the store
// for no changes (its scan is put off for the due items), and finds the
// snapshot the read was started from (its HIGHESTMODSEQ and scan time).
// Then a flag changed after the read ahead is a change after the
// snapshot's mod-sequence, which the next scan finds and sends as a Change
// (the state records the flags the Add carried). A message expunged after
// it was read ahead goes to the phone as an Add and then as a Delete on
// the next scan, as one expunged just after a round's own read does.
// Otherwise, or after readAheadTTL, or when the next round takes other
// messages, what was read is dropped.
//
// Memory is bounded across all devices by Engine.ReadAheadBytes: a read
// ahead stops when the bytes held by all of them would go past it.

// DefaultReadAheadBytes is Engine.ReadAheadBytes by default.
const DefaultReadAheadBytes = 64 << 20

// readAheadTTL is how long what was read ahead is kept for the next round.
const readAheadTTL = time.Minute

// aheadKey names the collection of one device a read ahead is for.
type aheadKey struct{ user, device, collection string }

// readAhead is the read of one collection's next window.
type readAhead struct {
	folder  backend.FolderID
	modSeq  uint64 // the snapshot's HIGHESTMODSEQ when the read started
	scanned int64  // and its scan time
	started time.Time
	cancel  context.CancelFunc
	timer   *time.Timer
	// out gets each message read, in the order read; it is closed when
	// the read ends. Its capacity is the number of messages asked for,
	// so the read never waits for the round that takes it.
	out chan backend.Contents
	// ended is closed after out, once the read's session is closed.
	ended chan struct{}
}

// aheadPlan is what a round does about reading ahead: use takes the
// messages of a read started by the round before (nil: none to use), and
// next are the messages to read for the round after (empty: none).
type aheadPlan struct {
	use  *readAhead
	next backend.UIDSet
	// The snapshot the next read is started from.
	modSeq  uint64
	scanned int64
}

// readAheads is an Engine's reads ahead.
type readAheads struct {
	mu   sync.Mutex
	m    map[aheadKey]*readAhead
	held atomic.Int64  // bytes of messages read and not yet taken
	used atomic.Uint64 // messages a round took from a read ahead
}

// errAheadFull stops a read ahead at Engine.ReadAheadBytes.
var errAheadFull = errors.New("mailsync: read-ahead memory full")

// ReadAheadHeld returns the bytes of messages read ahead that no round has
// taken yet (bounded by ReadAheadBytes).
func (e *Engine) ReadAheadHeld() int64 { return e.ahead.held.Load() }

// ReadAheadUsed returns how many messages rounds took from reads ahead so
// far, rather than from IMAP.
func (e *Engine) ReadAheadUsed() uint64 { return e.ahead.used.Load() }

func (e *Engine) readAheadLimit() int64 {
	if e.ReadAheadBytes == 0 {
		return DefaultReadAheadBytes
	}
	return e.ReadAheadBytes
}

// planAhead returns the round's read-ahead plan: the read the round before
// started, if this round may use it (see above), and the next window, the
// newest win adds still due after this round's batch, if the round may
// start one. It takes any read ahead of the collection out of the
// engine's keeping: one the round may not use is dropped.
func (e *Engine) planAhead(req *Request, cur *state, win int, replay, scanned bool) *aheadPlan {
	ra := e.takeAhead(aheadKey{req.User, req.Device, req.Collection})
	if req.OpenSession == nil || e.readAheadLimit() < 0 || replay || cur.Snap == nil {
		e.dropAhead(ra)
		return nil
	}
	p := &aheadPlan{modSeq: cur.Snap.HighestModSeq, scanned: cur.Scanned}
	if ra != nil {
		if scanned || ra.folder != req.Folder || ra.modSeq != p.modSeq || ra.scanned != p.scanned ||
			e.now().Sub(ra.started) > readAheadTTL {
			e.dropAhead(ra)
		} else {
			p.use = ra
		}
	}
	n := win
	for uid := range cur.DueAdded.Diff(cur.Failed).Backward() {
		if n <= 0 {
			break
		}
		p.next.AddUID(uid)
		n--
	}
	return p
}

// takeAhead removes the read ahead of k from the engine's keeping.
func (e *Engine) takeAhead(k aheadKey) *readAhead {
	e.ahead.mu.Lock()
	defer e.ahead.mu.Unlock()
	ra := e.ahead.m[k]
	if ra != nil {
		delete(e.ahead.m, k)
		ra.timer.Stop()
	}
	return ra
}

// dropAhead ends the read ra, if any, and frees what it read.
func (e *Engine) dropAhead(ra *readAhead) {
	if ra == nil {
		return
	}
	ra.cancel()
	go func() {
		for c := range ra.out {
			e.ahead.held.Add(-int64(len(c.Whole)))
			backend.ReleaseBytes(c.Whole)
		}
	}()
}

// startAhead starts reading the plan's next window on a session of its
// own, unless the memory bound is reached already.
func (e *Engine) startAhead(req *Request, p *aheadPlan) {
	limit := e.readAheadLimit()
	if p == nil || p.next.Len() == 0 || e.ahead.held.Load() >= limit {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), readAheadTTL)
	k := aheadKey{req.User, req.Device, req.Collection}
	ra := &readAhead{folder: req.Folder, modSeq: p.modSeq, scanned: p.scanned, started: e.now(),
		cancel: cancel, out: make(chan backend.Contents, p.next.Len()), ended: make(chan struct{})}
	e.ahead.mu.Lock()
	if e.ahead.m == nil {
		e.ahead.m = make(map[aheadKey]*readAhead)
	}
	old := e.ahead.m[k]
	e.ahead.m[k] = ra
	ra.timer = time.AfterFunc(readAheadTTL, func() {
		e.ahead.mu.Lock()
		mine := e.ahead.m[k] == ra
		if mine {
			delete(e.ahead.m, k)
		}
		e.ahead.mu.Unlock()
		if mine {
			e.dropAhead(ra)
		}
	})
	e.ahead.mu.Unlock()
	if old != nil {
		old.timer.Stop()
		e.dropAhead(old)
	}
	open, folder, uids := req.OpenSession, req.Folder, p.next
	user, device, collection := req.User, req.Device, req.Collection
	go func() {
		defer close(ra.ended)
		defer close(ra.out)
		defer cancel()
		sess, err := open(ctx)
		if err != nil {
			e.log().Debug("sync: read-ahead not started", "user", user, "device", device, "collection", collection, "err", err)
			return
		}
		defer sess.Close()
		err = sess.Contents(ctx, folder, firstReads(uids), func(c backend.Contents) error {
			if c.Summary == nil { // asked for: only a broken answer lacks it
				backend.ReleaseBytes(c.Whole)
				return nil
			}
			n := int64(len(c.Whole))
			if e.ahead.held.Add(n) > limit {
				e.ahead.held.Add(-n)
				backend.ReleaseBytes(c.Whole)
				return errAheadFull
			}
			ra.out <- c
			return nil
		})
		if err != nil && !errors.Is(err, errAheadFull) && ctx.Err() == nil {
			e.log().Debug("sync: read-ahead failed", "user", user, "device", device, "collection", collection, "err", err)
		}
	}()
}

// useAhead hands each message of ra to f as the read brings it, until the
// read ends, and returns nil; or ctx's error if ctx ends first (what is
// left of the read is dropped).
func (e *Engine) useAhead(ctx context.Context, ra *readAhead, f func(backend.Contents)) error {
	for {
		select {
		case c, ok := <-ra.out:
			if !ok {
				return nil
			}
			e.ahead.held.Add(-int64(len(c.Whole)))
			f(c)
		case <-ctx.Done():
			e.dropAhead(ra)
			return ctx.Err()
		}
	}
}

// firstReads are the requests of a window's first read of the messages
// uids, newest first: the firstChunk newest, then the rest, each with
// what an item of a small message is built from.
func firstReads(uids backend.UIDSet) []backend.ContentRequest {
	var reqs []backend.ContentRequest
	i := 0
	for uid := range uids.Backward() {
		if i == 0 || i == firstChunk {
			reqs = append(reqs, backend.ContentRequest{Summary: true, NoStructure: true, Whole: true, WholeLimit: WholeMessageMax + 1})
		}
		reqs[len(reqs)-1].UIDs.AddUID(uid)
		i++
	}
	return reqs
}
