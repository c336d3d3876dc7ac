package imapstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
)

// lendEnv is a Watch on alice's Inbox on Dovecot (CONDSTORE), a session
// whose operations borrow its connection, and an outside client.
type lendEnv struct {
	t       *testing.T
	d       *testsrv.Dovecot
	s       *imapstore.Store
	sess    backend.Session
	wt      backend.Watch
	out     *outside
	inbox   backend.FolderID
	work    backend.FolderID
	uids    []backend.UID // in the Inbox
	changed chan struct{}
}

func newLendEnv(t *testing.T, opts imapstore.Options) *lendEnv {
	d := testsrv.StartDovecot(t, nil)
	opts.Addr = d.Addr
	e := &lendEnv{t: t, d: d, s: newStore(t, opts), changed: make(chan struct{}, 64)}
	ctx := t.Context()
	e.out = dialOutside(t, d.Addr, "alice", d.Users["alice"])
	e.out.CreateFolder("Work")
	for range 3 {
		e.uids = append(e.uids, e.out.Append("INBOX", []byte("Subject: a\r\n\r\na\r\n"), nil, time.Now()))
	}
	e.out.Append("Work", []byte("Subject: w\r\n\r\nw\r\n"), nil, time.Now())
	e.out.unselect()
	var err error
	if e.sess, err = e.s.Open(ctx, "alice", d.Users["alice"]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.sess.Close() })
	folders, err := e.sess.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range folders {
		switch f.Name {
		case "INBOX":
			e.inbox = f.ID
		case "Work":
			e.work = f.ID
		}
	}
	e.wt, err = e.sess.(backend.Watcher).Watch(ctx, e.inbox, func() {
		select {
		case e.changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.wt.Close() })
	return e
}

// settled waits until the watch's connection is back watching, no
// operation waits for it, and the pool keeps no connection beside it.
func (e *lendEnv) settled() imapstore.PoolStats {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := e.s.Stats("alice")
		if st.Lent == 0 && st.Waiting == 0 && st.Open == 0 {
			return st
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("the watch connection never came back: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// drain empties the change reports (the watch's own set-up may report).
func (e *lendEnv) drain() {
	for {
		select {
		case <-e.changed:
		default:
			return
		}
	}
}

// reported waits for a change report and lets the connection settle;
// quiet then checks that it came once.
func (e *lendEnv) reported(what string) {
	e.t.Helper()
	select {
	case <-e.changed:
	case <-e.wt.Done():
		e.t.Fatalf("%s: the watch ended: %v", what, e.wt.Err())
	case <-time.After(30 * time.Second):
		e.t.Fatalf("%s: no change reported", what)
	}
	e.settled()
}

// quiet checks that no change was reported: the watch's connection is
// back and a Folders on it (which waits its turn behind any earlier
// lend) found nothing to report either.
func (e *lendEnv) quiet(what string) {
	e.t.Helper()
	e.settled()
	if _, err := e.wt.Folders(e.t.Context()); err != nil {
		e.t.Fatal(err)
	}
	e.settled()
	select {
	case <-e.changed:
		e.t.Fatalf("%s: a change was reported", what)
	default:
	}
}

// hold runs an operation that keeps the borrowed connection until
// release is closed: a Contents read of folder whose callback blocks.
// It returns once the operation has the connection.
func (e *lendEnv) hold(folder backend.FolderID, uid backend.UID) (release chan struct{}, done chan error) {
	return e.holdCtx(e.t.Context(), folder, uid)
}

// holdCtx is hold with the operation's context.
func (e *lendEnv) holdCtx(ctx context.Context, folder backend.FolderID, uid backend.UID) (release chan struct{}, done chan error) {
	release, done = make(chan struct{}), make(chan error, 1)
	have := make(chan struct{})
	var uids backend.UIDSet
	uids.AddUID(uid)
	go func() {
		done <- e.sess.Contents(ctx, folder, []backend.ContentRequest{{UIDs: uids, Summary: true}}, func(backend.Contents) error {
			close(have)
			<-release
			return nil
		})
	}()
	select {
	case <-have:
	case err := <-done:
		e.t.Fatalf("holding operation ended: %v", err)
	}
	return release, done
}

// TestLendWatchConnection: while a Watch runs on Dovecot, the user's
// operations run on its connection (Dovecot counts one session for the
// gateway), and every change made while it is lent is reported exactly
// once — by another client while the borrower reads the same folder's
// flags or has another folder selected, and by the borrower itself (a
// MOVE is told to the borrower as an EXPUNGE and moves the marks) —
// while operations that change nothing report nothing.
func TestLendWatchConnection(t *testing.T) {
	e := newLendEnv(t, imapstore.Options{})
	ctx := t.Context()
	e.settled()
	e.drain()

	// Reads borrow the watch's connection; nothing to report.
	if _, err := e.sess.Folders(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sess.Changes(ctx, e.inbox, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	var one backend.UIDSet
	one.AddUID(1)
	if _, err := e.sess.Summaries(ctx, e.work, one); err != nil {
		t.Fatal(err)
	}
	e.quiet("reads only")
	st := e.s.Stats("alice")
	if st.Dials != 1 || st.Lends < 4 || st.Watching != 1 {
		// Dials is the LOGIN that Open verified the password with.
		t.Fatalf("operations did not run on the watch connection: %+v", st)
	}
	if n, err := e.d.ConnectionCount("alice"); err != nil || n != 2 {
		t.Fatalf("Dovecot counts %d sessions of alice (%v), want the watch's and the outside client's", n, err)
	}

	// Another client's flag change while the borrower reads the Inbox's
	// flags: the borrower's FETCH may carry the change, the watch must
	// still report it.
	release, done := e.hold(e.inbox, e.uids[0])
	e.out.SetFlags("INBOX", e.uids[1], []string{backend.FlagFlagged})
	e.out.unselect()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.reported("flag change while lent")
	e.quiet("after the flag change")

	// An arrival in the Inbox while the borrower has Work selected.
	release, done = e.hold(e.work, 1)
	e.out.Append("INBOX", []byte("Subject: b\r\n\r\nb\r\n"), nil, time.Now())
	e.out.unselect()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.reported("arrival while Work was selected")
	e.quiet("after the arrival")

	// The borrower's own changes: a flag, a move out of the Inbox.
	if _, err := e.sess.StoreFlags(ctx, e.inbox, e.uids[2], []string{backend.FlagSeen}, nil); err != nil {
		t.Fatal(err)
	}
	e.reported("own flag change")
	e.quiet("after the own flag change")
	if _, err := e.sess.Move(ctx, e.inbox, e.uids[2], e.work); err != nil {
		t.Fatal(err)
	}
	e.reported("own move")
	e.quiet("after the own move")

	if st := e.s.Stats("alice"); st.Dials != 1 || st.MaxOpen != 1 {
		t.Fatalf("a connection was opened beside the watch's: %+v", st)
	}
}

// TestLendQueue: an operation that finds the watch's connection lent
// waits for it and gets it (no connection of its own); one that waits
// longer than LendWait opens a connection of its own, which is closed
// when it comes back (the watch's makes it redundant); a streamed
// message never borrows it; a watch closed while its connection is lent
// lets the borrower finish and then closes it.
func TestLendQueue(t *testing.T) {
	ctx := t.Context()
	t.Run("handed over", func(t *testing.T) {
		e := newLendEnv(t, imapstore.Options{LendWait: time.Hour})
		e.settled()
		release, done := e.hold(e.inbox, e.uids[0])
		got := make(chan error, 1)
		go func() {
			_, err := e.sess.Folders(ctx)
			got <- err
		}()
		until(t, "the second operation waits", func() bool { return e.s.Stats("alice").Waiting == 1 })
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		if st := e.settled(); st.Dials != 1 || st.MaxOpen != 1 || st.Lends < 2 {
			t.Fatalf("the waiting operation did not get the watch's connection: %+v", st)
		}
	})
	t.Run("waited too long", func(t *testing.T) {
		e := newLendEnv(t, imapstore.Options{LendWait: time.Millisecond})
		e.settled()
		release, done := e.hold(e.inbox, e.uids[0])
		got := make(chan error, 1)
		go func() {
			_, err := e.sess.Folders(ctx)
			got <- err
		}()
		select {
		case err := <-got:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			close(release)
			t.Fatal("the operation waited for the lent connection past LendWait")
		}
		if st := e.s.Stats("alice"); st.Dials != 2 || st.Open != 0 {
			t.Fatalf("after LendWait: %+v, want a second connection dialled and closed after use", st)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		e.settled()
	})
	t.Run("streams", func(t *testing.T) {
		e := newLendEnv(t, imapstore.Options{})
		e.settled()
		r, err := e.sess.Message(ctx, e.inbox, e.uids[0])
		if err != nil {
			t.Fatal(err)
		}
		st := e.s.Stats("alice")
		r.Close()
		if st.Lent != 0 || st.Open != 1 {
			t.Fatalf("a streamed message borrowed the watch's connection: %+v", st)
		}
	})
	t.Run("borrower cancelled", func(t *testing.T) {
		// Closing the connection under the cancelled borrower would end
		// the watch: the borrower's commands finish instead.
		e := newLendEnv(t, imapstore.Options{})
		e.settled()
		octx, cancel := context.WithCancel(ctx)
		release, done := e.holdCtx(octx, e.inbox, e.uids[0])
		cancel()
		close(release)
		<-done
		st := e.settled()
		select {
		case <-e.wt.Done():
			t.Fatalf("the watch ended with its borrower's context: %v", e.wt.Err())
		default:
		}
		if _, err := e.sess.Folders(ctx); err != nil {
			t.Fatal(err)
		}
		if after := e.settled(); after.Dials != st.Dials || after.Lends <= st.Lends {
			t.Fatalf("the watch's connection was not lent again: before %+v, after %+v", st, after)
		}
	})
	t.Run("watch closed while lent", func(t *testing.T) {
		e := newLendEnv(t, imapstore.Options{})
		e.settled()
		release, done := e.hold(e.inbox, e.uids[0])
		e.wt.Close()
		<-e.wt.Done()
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("the borrower failed when the watch closed: %v", err)
		}
		until(t, "the watch's connection closed", func() bool {
			n, err := e.d.ConnectionCount("alice")
			return err == nil && n == 1 // the outside client
		})
		if _, err := e.sess.Folders(ctx); err != nil {
			t.Fatal(err)
		}
		if st := e.s.Stats("alice"); st.Watching != 0 || st.Lent != 0 || st.Open != 1 {
			t.Fatalf("after the watch: %+v", st)
		}
	})
}

// TestNoLendWithoutCondStore: on a server without CONDSTORE (go-imap's
// in-memory server) a flag change would not move the marks a lent
// connection is checked with, so the watch lends nothing.
func TestNoLendWithoutCondStore(t *testing.T) {
	m := testsrv.StartMemIMAP(t, nil)
	s := newStore(t, imapstore.Options{Addr: m.Addr})
	ctx := t.Context()
	sess, err := s.Open(ctx, "alice", m.Users["alice"])
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	folders, err := sess.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := sess.(backend.Watcher).Watch(ctx, folders[0].ID, func() {})
	if err != nil {
		t.Fatal(err)
	}
	defer wt.Close()
	if _, err := sess.Folders(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Folders(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats("alice"); st.Lends != 0 || st.Watching != 1 || st.Open != 1 {
		t.Fatalf("without CONDSTORE: %+v, want no lends", st)
	}
}

// until polls cond (a state another goroutine reaches) for up to 30 s.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
