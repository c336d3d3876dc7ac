package mailsync_test

import (
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/eas/mailsync"
)

// primedInbox appends messages 1 to n to INBOX and returns it with a
// phone that has primed it (SyncKey 0).
func primedInbox(e *env, n int) (backend.FolderID, *phone) {
	e.t.Helper()
	e.appendMsgs("INBOX", 1, n, day0)
	inbox := e.folder("INBOX")
	p := newPhone(e.t, "1")
	p.apply(e.sync(e.request("1", inbox, "0", 5)))
	return inbox, p
}

// pageThrough runs the paged rounds of an initial sync of INBOX in windows
// of win after the priming round, calling between(round) before each;
// it returns the results.
func pageThrough(e *env, p *phone, inbox backend.FolderID, win int, between func(round int)) []*mailsync.Result {
	e.t.Helper()
	var rs []*mailsync.Result
	for round := 0; ; round++ {
		if between != nil {
			between(round)
		}
		r := e.sync(e.request("1", inbox, p.key, win))
		p.apply(r)
		rs = append(rs, r)
		if !r.MoreAvailable {
			return rs
		}
		if round > 20 {
			e.t.Fatal("no end")
		}
	}
}

// TestReadAheadPaging: each paged round after the first takes its whole
// window from the read ahead the round before started, and the phone ends
// with what IMAP holds; nothing stays held.
func TestReadAheadPaging(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		inbox, p := primedInbox(e, 12)
		pageThrough(e, p, inbox, 5, func(round int) {
			if round > 0 && !mailsync.AwaitReadAhead(e.eng, "alice", "dev1", "1") {
				t.Fatalf("round %d: no read ahead kept", round)
			}
		})
		// Rounds 2 and 3 take 7..3 and 2..1 (round 1 scans and reads 12..8).
		if n := e.eng.ReadAheadUsed(); n != 7 {
			t.Errorf("%d messages taken from reads ahead, want 7", n)
		}
		if n := e.eng.ReadAheadHeld(); n != 0 {
			t.Errorf("%d bytes still held", n)
		}
		p.matches(e.imapView("INBOX"))
	})
}

// TestReadAheadRecheck: a message expunged after it was read ahead is not
// sent, and one whose flags changed is sent with its flags of now, not as
// an Add with the old flags and a Change later.
func TestReadAheadRecheck(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		inbox, p := primedInbox(e, 12)
		rs := pageThrough(e, p, inbox, 5, func(round int) {
			if round != 1 {
				return
			}
			if !mailsync.AwaitReadAhead(e.eng, "alice", "dev1", "1") {
				t.Fatal("no read ahead kept")
			}
			e.store("INBOX", 6, imap.StoreFlagsAdd, imap.FlagFlagged)
			e.expunge("INBOX", 5)
		})
		if len(rs) != 3 || len(rs[1].Adds) != 4 {
			t.Fatalf("%d rounds, the second with %d adds; want 3, 4 (7, 6, 4, 3)", len(rs), len(rs[1].Adds))
		}
		if n := e.eng.ReadAheadUsed(); n != 6 {
			t.Errorf("%d messages taken from reads ahead, want 6", n)
		}
		r := e.sync(e.request("1", inbox, p.key, 5))
		if len(r.Changes)+len(r.Deletes)+len(r.Adds) > 0 {
			t.Errorf("the Sync after paging: %d changes, %d deletes, %d adds; want none", len(r.Changes), len(r.Deletes), len(r.Adds))
		}
		p.apply(r)
		p.matches(e.imapView("INBOX"))
	})
}

// TestReadAheadDropped: what was read ahead is not used by a round that
// scans (its snapshot is newer than the read), nor by a round repeating
// a key, nor kept when reading ahead is off or its memory is full; the
// phone's view is right all the same, and nothing stays held.
func TestReadAheadDropped(t *testing.T) {
	cases := []struct {
		name  string
		setup func(e *env)
		round func(e *env, p *phone, round int)
		used  uint64 // messages taken from reads ahead in all
	}{
		{"scan", nil, func(e *env, p *phone, round int) {
			if round == 1 {
				mailsync.AwaitReadAhead(e.eng, "alice", "dev1", "1")
				e.store("INBOX", 7, imap.StoreFlagsAdd, imap.FlagSeen)
				e.appendMsg("INBOX", 13, day0)
				now := time.Now().Add(time.Minute) // past the scan's deferral
				e.eng.Now = func() time.Time { return now }
			}
		}, 3}, // the scanning round reads 13, 7..4 itself; the next takes 3..1
		{"retry", nil, func(e *env, p *phone, round int) {
			if round == 1 {
				mailsync.AwaitReadAhead(e.eng, "alice", "dev1", "1")
				e.retried(p, func(key string) *mailsync.Request { return e.request("1", e.folder("INBOX"), key, 5) })
			}
		}, 5}, // the first answer takes 7..3; its repeat and the last round read from IMAP
		{"off", func(e *env) { e.eng.ReadAheadBytes = -1 }, nil, 0},
		{"full", func(e *env) { e.eng.ReadAheadBytes = 1 }, nil, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			forEachServer(t, func(t *testing.T, e *env) {
				if c.setup != nil {
					c.setup(e)
				}
				inbox, p := primedInbox(e, 12)
				pageThrough(e, p, inbox, 5, func(round int) {
					if c.round != nil {
						c.round(e, p, round)
					}
				})
				if n := e.eng.ReadAheadUsed(); n != c.used {
					t.Errorf("%d messages taken from reads ahead, want %d", n, c.used)
				}
				e.settle(p, func(key string) *mailsync.Request { return e.request("1", inbox, key, 5) }, "INBOX")
				if n := heldAfterDrops(e.eng); n != 0 {
					t.Errorf("%d bytes still held", n)
				}
			})
		})
	}
}

// heldAfterDrops returns the bytes reads ahead hold once the ones dropped
// have been freed (which happens on goroutines of their own): it waits
// up to 10 s for them to reach 0.
func heldAfterDrops(eng *mailsync.Engine) int64 {
	for range 1000 {
		if eng.ReadAheadHeld() == 0 {
			return 0
		}
		time.Sleep(10 * time.Millisecond)
	}
	return eng.ReadAheadHeld()
}

// TestReadAheadOtherWindow: a round whose window differs from the one
// read ahead takes the messages it shares with it, reads the others,
// frees the rest, and a FilterType change (which scans) drops the read;
// the phone ends with what IMAP holds and nothing stays held.
func TestReadAheadOtherWindow(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsgs("INBOX", 1, 20, day0)
		inbox := e.folder("INBOX")
		p := newPhone(t, "1")
		req := func(win, filter int) *mailsync.Request {
			r := e.request("1", inbox, p.key, win)
			r.Options.FilterType = filter
			return r
		}
		p.apply(e.sync(e.request("1", inbox, "0", 5)))
		p.apply(e.sync(req(5, 0))) // 20..16; reads 15..11 ahead
		mailsync.AwaitReadAhead(e.eng, "alice", "dev1", "1")
		r := e.sync(req(3, 0)) // 15..13 from the read ahead; 12, 11 freed
		p.apply(r)
		if n := e.eng.ReadAheadUsed(); len(r.Adds) != 3 || n != 3 {
			t.Errorf("smaller window: %d adds, %d taken from the read ahead; want 3, 3", len(r.Adds), n)
		}
		mailsync.AwaitReadAhead(e.eng, "alice", "dev1", "1") // 12..10
		r = e.sync(req(6, 0))                                // 12..10 from it, 9..7 read
		p.apply(r)
		if n := e.eng.ReadAheadUsed(); len(r.Adds) != 6 || n != 6 {
			t.Errorf("larger window: %d adds, %d taken in all; want 6, 6", len(r.Adds), n)
		}
		mailsync.AwaitReadAhead(e.eng, "alice", "dev1", "1")
		p.apply(e.sync(req(6, 1))) // a FilterType: a scan, the read ahead is dropped
		if n := e.eng.ReadAheadUsed(); n != 6 {
			t.Errorf("after a FilterType change: %d taken in all, want still 6", n)
		}
		e.settle(p, func(key string) *mailsync.Request { return req(6, 0) }, "INBOX")
		if n := heldAfterDrops(e.eng); n != 0 {
			t.Errorf("%d bytes still held", n)
		}
	})
}
