package mailsync_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/eas/mailsync"
	"github.com/easgate/easgate/wbxml"
)

var day0 = time.Now().Add(-time.Hour)

// TestPagedInitialSyncWithOutsideChanges pages 23 messages in windows of
// 5 while an outside client appends, flags, expunges and moves, then
// compares the phone's copy with IMAP: nothing lost, nothing doubled.
func TestPagedInitialSyncWithOutsideChanges(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsgs("INBOX", 1, 23, day0)
		inbox := e.folder("INBOX")
		p := newPhone(t, "1")
		r := e.sync(e.request("1", inbox, "0", 5))
		if len(r.Adds) != 0 || r.SyncKey == "0" {
			t.Fatalf("priming: %d adds, key %q", len(r.Adds), r.SyncKey)
		}
		p.apply(r)
		for round := 0; ; round++ {
			r := e.sync(e.request("1", inbox, p.key, 5))
			if n := len(r.Adds) + len(r.Changes) + len(r.Deletes) + len(r.SoftDeletes); n > 5 {
				t.Fatalf("round %d: %d items in a window of 5", round, n)
			}
			p.apply(r)
			switch round {
			case 0:
				e.appendMsg("INBOX", 100, day0)
				e.store("INBOX", 23, imap.StoreFlagsAdd, imap.FlagSeen) // sent already
				e.store("INBOX", 2, imap.StoreFlagsAdd, imap.FlagFlagged)
			case 1:
				e.expunge("INBOX", 22) // sent already
				e.expunge("INBOX", 3)  // not sent yet
			case 2:
				e.moveOut("INBOX", 21, "Work")
				e.moveOut("INBOX", 4, "Work")
				e.store("INBOX", 20, imap.StoreFlagsAdd, imap.FlagSeen, imap.FlagFlagged)
			}
			if !r.MoreAvailable && round > 2 {
				break
			}
			if round > 50 {
				t.Fatal("no end")
			}
		}
		e.syncAll(p, inbox, 5)
		p.matches(e.imapView("INBOX"))
		// Nothing left: the next Sync is unchanged and keeps the key.
		r = e.sync(e.request("1", inbox, p.key, 5))
		if !r.Unchanged || r.SyncKey != p.key {
			t.Errorf("settled Sync: unchanged %v key %q (phone %q)", r.Unchanged, r.SyncKey, p.key)
		}
	})
}

// TestPagedRoundsSkipScan: the adds a window leaves for later are kept
// as due, so the rounds that send them do not ask the store for changes
// (a paged sync scans once, in its first round); the phone's next Sync
// scans and finds what changed meanwhile. A due message a change touched
// is sent with its flags of then (or not at all), never as a Change or
// Delete.
func TestPagedRoundsSkipScan(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsgs("INBOX", 1, 12, day0)
		inbox := e.folder("INBOX")
		p := newPhone(t, "1")
		p.apply(e.sync(e.request("1", inbox, "0", 5)))
		var scans []backend.Scan
		check := func(round int, r *mailsync.Result) {
			scans = append(scans, r.Scan)
			if len(r.Changes)+len(r.Deletes) > 0 {
				t.Errorf("round %d: %d changes, %d deletes of messages the phone never had", round, len(r.Changes), len(r.Deletes))
			}
			p.apply(r)
		}
		for round := 0; ; round++ {
			if round == 2 {
				e.store("INBOX", 2, imap.StoreFlagsAdd, imap.FlagFlagged) // due, not sent
				e.expunge("INBOX", 1)                                     // due, not sent
				e.appendMsg("INBOX", 13, day0)                            // new
			}
			r := e.sync(e.request("1", inbox, p.key, 5))
			check(round, r)
			if !r.MoreAvailable {
				break
			}
			if round > 10 {
				t.Fatal("no end")
			}
		}
		check(3, e.sync(e.request("1", inbox, p.key, 5)))
		want := []backend.Scan{backend.ScanFull, backend.ScanSkipped, backend.ScanSkipped}
		if len(scans) != 4 || !slices.Equal(scans[:3], want) || scans[3] == backend.ScanSkipped {
			t.Errorf("scans %v: want %v, then a real scan in the Sync after the paged rounds", scans, want)
		}
		if got := len(p.items); got != 12 {
			t.Errorf("phone has %d messages, want 12", got)
		}
		p.matches(e.imapView("INBOX"))
	})
}

func encodeItems(t *testing.T, r *mailsync.Result) []byte {
	t.Helper()
	root := wbxml.E(wbxml.AirSyncCommands)
	for _, id := range r.Deletes {
		root.Add(wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, id)))
	}
	for _, id := range r.SoftDeletes {
		root.Add(wbxml.E(wbxml.AirSyncSoftDelete, wbxml.T(wbxml.AirSyncServerId, id)))
	}
	for _, it := range r.Changes {
		root.Add(wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, it.ServerID), it.Data))
	}
	for _, it := range r.Adds {
		root.Add(wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncServerId, it.ServerID), it.Data))
	}
	for _, rs := range r.Responses {
		root.Add(wbxml.T(wbxml.AirSyncStatus, rs.ServerID+"/"+rs.ClientID+"/"+string(rune('0'+rs.Status))))
	}
	b, err := wbxml.Marshal(root)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRetriedKeyReplays sends every key twice after each kind of change:
// the second answer has the same items, and the phone continuing from it
// ends up with exactly what IMAP holds.
func TestRetriedKeyReplays(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsgs("INBOX", 1, 6, day0)
		inbox := e.folder("INBOX")
		p := newPhone(t, "1")
		p.apply(e.sync(e.request("1", inbox, "0", 4)))
		changes := []func(){
			func() {}, // the initial adds (4 of 6, then 2)
			func() {},
			func() { e.appendMsg("INBOX", 7, day0) },
			func() { e.store("INBOX", 1, imap.StoreFlagsAdd, imap.FlagSeen) },
			func() { e.expunge("INBOX", 2) },
			func() { e.moveOut("INBOX", 3, "Work") },
		}
		for i, change := range changes {
			change()
			first := e.sync(e.request("1", inbox, p.key, 4))
			// The response is lost: the phone sends the same key again.
			second := e.sync(e.request("1", inbox, p.key, 4))
			if !second.Replay {
				t.Errorf("change %d: repeated key not taken as a replay", i)
			}
			if a, b := encodeItems(t, first), encodeItems(t, second); !bytes.Equal(a, b) {
				t.Errorf("change %d: replay differs:\nfirst  %x\nsecond %x", i, a, b)
			}
			if first.MoreAvailable != second.MoreAvailable {
				t.Errorf("change %d: MoreAvailable %v then %v", i, first.MoreAvailable, second.MoreAvailable)
			}
			p.apply(second)
			if first.SyncKey == second.SyncKey {
				t.Errorf("change %d: replay reused key %s", i, first.SyncKey)
			}
		}
		e.syncAll(p, inbox, 4)
		p.matches(e.imapView("INBOX"))
		// The key of the lost response is gone; the one before the
		// current is still good.
	})
}

// TestRetriesShrinkWindow: a phone that keeps repeating a key gets half
// the batch each time, down to one item, and nothing is lost.
func TestRetriesShrinkWindow(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsgs("INBOX", 1, 10, day0)
		inbox := e.folder("INBOX")
		p := newPhone(t, "1")
		p.apply(e.sync(e.request("1", inbox, "0", 8)))
		var sizes []int
		for range 5 {
			r := e.sync(e.request("1", inbox, p.key, 8))
			sizes = append(sizes, len(r.Adds))
			if len(sizes) == 5 {
				p.apply(r)
			}
		}
		if want := []int{8, 8, 4, 2, 1}; !slices.Equal(sizes, want) {
			t.Errorf("batch sizes %v, want %v", sizes, want)
		}
		e.syncAll(p, inbox, 8)
		p.matches(e.imapView("INBOX"))
	})
}

// TestClientCommands checks what IMAP holds after each client command and
// that the client's own changes are not echoed back.
func TestClientCommands(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsgs("INBOX", 1, 5, day0)
		inbox := e.folder("INBOX")
		p := newPhone(t, "1")
		p.apply(e.sync(e.request("1", inbox, "0", 50)))
		e.syncAll(p, inbox, 50)
		yes, two, none := true, "2", ""
		r := e.sync(e.request("1", inbox, p.key, 50,
			mailsync.Command{Kind: mailsync.CmdChange, ServerID: "1:1", Read: &yes},
			mailsync.Command{Kind: mailsync.CmdChange, ServerID: "1:2", Flag: &two},
			mailsync.Command{Kind: mailsync.CmdChange, ServerID: "1:99", Read: &yes},
			mailsync.Command{Kind: mailsync.CmdDelete, ServerID: "1:3"},
			mailsync.Command{Kind: mailsync.CmdFetch, ServerID: "1:4"},
		))
		if len(r.Adds)+len(r.Changes)+len(r.Deletes) != 0 {
			t.Errorf("client changes echoed: %d adds, %d changes, %d deletes", len(r.Adds), len(r.Changes), len(r.Deletes))
		}
		statuses := map[string]int{}
		for _, rs := range r.Responses {
			statuses[rs.Kind.String()+" "+rs.ServerID] = rs.Status
		}
		want := map[string]int{"Change 1:99": 8, "Fetch 1:4": 1}
		for k, v := range want {
			if statuses[k] != v {
				t.Errorf("%s: status %d, want %d (all: %v)", k, statuses[k], v, statuses)
			}
		}
		if len(statuses) != len(want) {
			t.Errorf("responses %v, want %v", statuses, want)
		}
		p.items["1:1"] = flagView(true, false)
		p.items["1:2"] = flagView(false, true)
		delete(p.items, "1:3")
		p.key = r.SyncKey
		view := e.imapView("INBOX")
		p.matches(view)
		if trash := e.imapView("Trash"); len(trash) != 1 {
			t.Errorf("Trash holds %d messages, want the deleted one", len(trash))
		}
		// Unflag with an empty Flag, and delete outright in Trash.
		r = e.sync(e.request("1", inbox, p.key, 50, mailsync.Command{Kind: mailsync.CmdChange, ServerID: "1:2", Flag: &none}))
		p.apply(r)
		p.items["1:2"] = flagView(false, false)
		p.matches(e.imapView("INBOX"))
		trash := e.folder("Trash")
		tp := newPhone(t, "4")
		tp.apply(e.sync(e.request("4", trash, "0", 50)))
		e.syncAll(tp, trash, 50)
		tp.matches(e.imapView("Trash"))
		var id string
		for k := range tp.items {
			id = k
		}
		r = e.sync(e.request("4", trash, tp.key, 50, mailsync.Command{Kind: mailsync.CmdDelete, ServerID: id}))
		if len(r.Responses) != 0 {
			t.Errorf("delete in Trash: %+v", r.Responses)
		}
		tp.apply(r)
		delete(tp.items, id)
		if v := e.imapView("Trash"); len(v) != 0 {
			t.Errorf("Trash still holds %v", v)
		}
		tp.matches(e.imapView("Trash"))
		// Nothing is echoed later either.
		e.syncAll(p, inbox, 50)
		p.matches(e.imapView("INBOX"))
	})
}

// TestUIDValidityChange: a folder recreated under the same name answers
// Status 3 once and the state is gone.
func TestUIDValidityChange(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsg("Work", 1, day0)
		work := e.folder("Work")
		p := newPhone(t, "7")
		p.apply(e.sync(e.request("7", work, "0", 10)))
		e.syncAll(p, work, 10)
		if err := e.out.Delete("Work").Wait(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(1100 * time.Millisecond) // UIDVALIDITY is a timestamp on Dovecot
		if err := e.out.Create("Work", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		r := e.sync(e.request("7", work, p.key, 10))
		if r.Status != mailsync.StatusInvalidSyncKey {
			t.Fatalf("status %d, want 3", r.Status)
		}
		r = e.sync(e.request("7", work, p.key, 10))
		if r.Status != mailsync.StatusInvalidSyncKey {
			t.Fatalf("second try: status %d, want 3 (state deleted)", r.Status)
		}
	})
}

// TestMoveItems: a moved message is neither doubled nor lost in either
// collection's next Sync.
func TestMoveItems(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsgs("INBOX", 1, 3, day0)
		e.appendMsg("Work", 10, day0)
		inbox, work := e.folder("INBOX"), e.folder("Work")
		pi, pw := newPhone(t, "1"), newPhone(t, "7")
		for _, c := range []struct {
			p *phone
			f backend.FolderID
		}{{pi, inbox}, {pw, work}} {
			c.p.apply(e.sync(e.request(c.p.coll, c.f, "0", 10)))
			e.syncAll(c.p, c.f, 10)
		}
		e.store("INBOX", 2, imap.StoreFlagsAdd, imap.FlagSeen)
		e.syncAll(pi, inbox, 10)
		dst, err := e.eng.Move(e.ctx, e.sess, "alice", "dev1", mailsync.Collection{ID: "1", Folder: inbox}, "1:2", mailsync.Collection{ID: "7", Folder: work})
		if err != nil {
			t.Fatal(err)
		}
		// The phone moves the item itself.
		firstDst := dst
		pw.items[dst] = pi.items["1:2"]
		delete(pi.items, "1:2")
		// And an unflagged one.
		dst, err = e.eng.Move(e.ctx, e.sess, "alice", "dev1", mailsync.Collection{ID: "1", Folder: inbox}, "1:1", mailsync.Collection{ID: "7", Folder: work})
		if err != nil {
			t.Fatal(err)
		}
		pw.items[dst] = pi.items["1:1"]
		delete(pi.items, "1:1")
		// INBOX has nothing to say; Work sends the flags of the
		// message whose change the last INBOX response carried (the
		// phone may not have got it), and nothing else.
		r := e.sync(e.request(pi.coll, inbox, pi.key, 10))
		if !r.Unchanged {
			t.Errorf("INBOX after the move: %d adds, %d changes, %d deletes", len(r.Adds), len(r.Changes), len(r.Deletes))
		}
		pi.apply(r)
		pi.matches(e.imapView("INBOX"))
		r = e.sync(e.request(pw.coll, work, pw.key, 10))
		if len(r.Adds)+len(r.Deletes) > 0 || len(r.Changes) != 1 || r.Changes[0].ServerID != firstDst {
			t.Errorf("Work after the move: %d adds, %d deletes, changes %v; want only a Change of %s", len(r.Adds), len(r.Deletes), r.Changes, firstDst)
		}
		pw.apply(r)
		pw.matches(e.imapView("Work"))
		if _, err := e.eng.Move(e.ctx, e.sess, "alice", "dev1", mailsync.Collection{ID: "1", Folder: inbox}, "1:3", mailsync.Collection{ID: "1", Folder: inbox}); err == nil {
			t.Error("move to the same folder succeeded")
		}
	})
}

// TestEstimate counts what the next Sync brings.
func TestEstimate(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsgs("INBOX", 1, 7, day0)
		inbox := e.folder("INBOX")
		est := func(key string) (int, int) {
			n, st, err := e.eng.Estimate(e.ctx, e.request("1", inbox, key, 3))
			if err != nil {
				t.Fatal(err)
			}
			return n, st
		}
		if _, st := est("0"); st != mailsync.EstimateNotPrimed {
			t.Errorf("key 0: status %d", st)
		}
		if _, st := est("12345"); st != mailsync.EstimateNotPrimed {
			t.Errorf("never synced: status %d", st)
		}
		p := newPhone(t, "1")
		p.apply(e.sync(e.request("1", inbox, "0", 3)))
		if n, st := est(p.key); n != 7 || st != 1 {
			t.Errorf("primed: %d, status %d; want 7", n, st)
		}
		p.apply(e.sync(e.request("1", inbox, p.key, 3)))
		e.store("INBOX", 7, imap.StoreFlagsAdd, imap.FlagSeen)
		if n, st := est(p.key); n != 5 || st != 1 {
			t.Errorf("after a window: %d, status %d; want 4 adds + 1 change", n, st)
		}
		if _, st := est("999"); st != mailsync.EstimateInvalidKey {
			t.Errorf("bad key: status %d", st)
		}
	})
}

// TestCategories: a Change's Categories become exactly the message's
// keywords; ones IMAP cannot carry are skipped, not an error.
func TestCategories(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsg("INBOX", 1, day0)
		inbox := e.folder("INBOX")
		p := newPhone(t, "1")
		p.apply(e.sync(e.request("1", inbox, "0", 10)))
		e.syncAll(p, inbox, 10)
		keywords := func() []string {
			sums, err := e.sess.Summaries(e.ctx, inbox, backend.NewUIDSet(1))
			if err != nil || len(sums) != 1 {
				t.Fatalf("summary: %v", err)
			}
			var k []string
			for _, f := range sums[0].Flags {
				if f[0] != '\\' {
					k = append(k, strings.ToLower(f)) // the memory server folds case
				}
			}
			slices.Sort(k)
			return k
		}
		for _, tt := range []struct {
			cats []string
			want []string
		}{
			{[]string{"Work", "Blue Category", "Home"}, []string{"home", "work"}},
			{[]string{"Home"}, []string{"home"}},
			{[]string{}, nil},
		} {
			r := e.sync(e.request("1", inbox, p.key, 10, mailsync.Command{Kind: mailsync.CmdChange, ServerID: "1:1", Categories: tt.cats}))
			if r.Status != 1 || len(r.Responses) != 0 || len(r.Changes) != 0 {
				sums, _ := e.sess.Summaries(e.ctx, inbox, backend.NewUIDSet(1))
				t.Fatalf("%v: status %d, responses %+v, changes %d; imap %v", tt.cats, r.Status, r.Responses, len(r.Changes), sums[0].Flags)
			}
			p.apply(r)
			if got := keywords(); !slices.Equal(got, tt.want) {
				t.Errorf("%v: keywords %v, want %v", tt.cats, got, tt.want)
			}
		}
	})
}

// TestFilterTypeSoftDelete: FilterType limits what is added by arrival
// date, and narrowing it sends SoftDelete for what left the window.
func TestFilterTypeSoftDelete(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		now := time.Now()
		e.appendMsg("INBOX", 1, now.AddDate(0, 0, -40)) // outside a month
		e.appendMsg("INBOX", 2, now.AddDate(0, 0, -5))  // within a week, not three days
		e.appendMsg("INBOX", 3, now.Add(-time.Hour))    // today
		inbox := e.folder("INBOX")
		p := newPhone(t, "1")
		withFilter := func(key string, filter int) *mailsync.Request {
			r := e.request("1", inbox, key, 10)
			r.Options.FilterType = filter
			return r
		}
		p.apply(e.sync(withFilter("0", 5)))
		r := e.sync(withFilter(p.key, 5))
		p.apply(r)
		if len(p.items) != 2 || p.items["1:1"] != "" {
			t.Fatalf("one month: phone has %v", p.items)
		}
		r = e.sync(withFilter(p.key, 2))
		if !slices.Equal(r.SoftDeletes, []string{"1:2"}) || len(r.Deletes) != 0 {
			t.Fatalf("three days: soft deletes %v, deletes %v", r.SoftDeletes, r.Deletes)
		}
		p.apply(r)
		r = e.sync(withFilter(p.key, 0))
		p.apply(r)
		if len(r.Adds) != 2 {
			t.Errorf("all: %d adds, want 2", len(r.Adds))
		}
		p.matches(e.imapView("INBOX"))
	})
}
