package mailsync_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/eas/mailsync"
)

// TestDeadlineStopsEarly: with the response budget spent, the engine stops
// adding, sets MoreAvailable, and the rest comes next time. The clock is
// injected: it moves one second per reading.
func TestDeadlineStopsEarly(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		for i := 1; i <= 10; i++ {
			e.appendMsg("INBOX", i, day0)
		}
		inbox := e.folder("INBOX")
		base := time.Now()
		var mu sync.Mutex
		n := 0
		e.eng.Now = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			n++
			return base.Add(time.Duration(n-1) * time.Second)
		}
		p := newPhone(t, "1")
		p.apply(e.sync(e.request("1", inbox, "0", 50)))
		mu.Lock()
		n = 0
		mu.Unlock()
		req := e.request("1", inbox, p.key, 50)
		req.Deadline = base.Add(4 * time.Second)
		r := e.sync(req)
		if len(r.Adds) != 3 || !r.MoreAvailable {
			t.Fatalf("%d adds, MoreAvailable %v; want 3 and true", len(r.Adds), r.MoreAvailable)
		}
		p.apply(r)
		e.syncAll(p, inbox, 50)
		p.matches(e.imapView("INBOX"))
	})
}

// conflictStore makes the next failures PutSyncState calls lose the race.
type conflictStore struct {
	devices.Store
	mu       sync.Mutex
	failures int
}

func (s *conflictStore) PutSyncState(ctx context.Context, user, device, coll string, base, next *devices.SyncState) error {
	s.mu.Lock()
	fail := s.failures > 0
	if fail {
		s.failures--
	}
	s.mu.Unlock()
	if fail {
		return devices.ErrConflict
	}
	return s.Store.PutSyncState(ctx, user, device, coll, base, next)
}

// TestConflictRetriedOnce: a lost compare-and-set is retried once from
// fresh state without running the client's commands twice; losing twice
// is Status 16 (retry) with the phone's key kept.
func TestConflictRetriedOnce(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		for i := 1; i <= 3; i++ {
			e.appendMsg("INBOX", i, day0)
		}
		inbox := e.folder("INBOX")
		cs := &conflictStore{Store: e.eng.Store}
		e.eng.Store = cs
		p := newPhone(t, "1")
		p.apply(e.sync(e.request("1", inbox, "0", 50)))
		e.syncAll(p, inbox, 50)

		cs.failures = 1
		r := e.sync(e.request("1", inbox, p.key, 50, mailsync.Command{Kind: mailsync.CmdDelete, ServerID: "1:1"}))
		if r.Status != mailsync.StatusSuccess || len(r.Responses) != 0 {
			t.Fatalf("after one conflict: status %d, responses %+v", r.Status, r.Responses)
		}
		p.apply(r)
		delete(p.items, "1:1")
		p.matches(e.imapView("INBOX"))

		e.appendMsg("INBOX", 4, day0)
		cs.failures = 2
		r = e.sync(e.request("1", inbox, p.key, 50))
		if r.Status != mailsync.StatusRetry || r.SyncKey != p.key {
			t.Fatalf("after two conflicts: status %d key %q", r.Status, r.SyncKey)
		}
		e.syncAll(p, inbox, 50)
		p.matches(e.imapView("INBOX"))
	})
}
