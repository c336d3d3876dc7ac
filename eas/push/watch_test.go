package push_test

import (
	"bytes"
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
	"github.com/easgate/easgate/eas/push"
)

// hubEnv is a Dovecot, an imapstore on it, and a Hub whose poll the test
// drives.
type hubEnv struct {
	t       *testing.T
	d       *testsrv.Dovecot
	store   *imapstore.Store
	hub     *push.Hub
	ticks   chan time.Time
	out     *imapclient.Client // another IMAP client
	folders map[string]backend.FolderID
}

func newHubEnv(t *testing.T) *hubEnv {
	d := testsrv.StartDovecot(t, nil)
	store, err := imapstore.New(imapstore.Options{Addr: d.Addr})
	if err != nil {
		t.Fatal(err)
	}
	e := &hubEnv{t: t, d: d, store: store, ticks: make(chan time.Time), folders: make(map[string]backend.FolderID)}
	e.hub = &push.Hub{Linger: -1, MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond,
		Ticker: func(time.Duration) (<-chan time.Time, func()) { return e.ticks, func() {} }}
	t.Cleanup(func() {
		e.hub.Close()
		store.Close()
	})
	e.out = d.Dial(t, "alice")
	if err := e.out.Create("Work", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	sess, err := store.Open(t.Context(), "alice", d.Users["alice"])
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	fs, err := sess.Folders(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		e.folders[f.Name] = f.ID
	}
	return e
}

func (e *hubEnv) open(ctx context.Context) (backend.Session, error) {
	return e.store.Open(ctx, "alice", e.d.Users["alice"])
}

func (e *hubEnv) appendTo(folder string) {
	e.t.Helper()
	msg := []byte("From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n")
	cmd := e.out.Append(folder, int64(len(msg)), nil)
	cmd.Write(msg)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		e.t.Fatal(err)
	}
}

// until waits for cond, failing after a generous bound (a hang guard,
// not a timing assertion).
func (e *hubEnv) until(what string, cond func() bool) {
	e.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			e.t.Fatalf("never: %s (pool %+v)", what, e.store.Stats("alice"))
		}
	}
}

// changed waits for a notification on sub and returns what it names.
func (e *hubEnv) changed(sub *push.Subscription) []backend.FolderID {
	e.t.Helper()
	select {
	case <-sub.Changed():
		fs, _ := sub.Take()
		return fs
	case <-time.After(30 * time.Second):
		e.t.Fatal("no change notified")
	}
	return nil
}

// quiet reports whether sub has nothing pending.
func quiet(sub *push.Subscription) bool {
	select {
	case <-sub.Changed():
		fs, hier := sub.Take()
		return len(fs) == 0 && !hier
	default:
		return true
	}
}

// TestHubShared: five waiters of one user share one watcher with one
// IDLE connection, counted on the Dovecot side; an APPEND to the Inbox
// from another client reaches every waiter through IDLE (no poll runs
// meanwhile), one to another folder reaches only that folder's waiters at
// the next poll, and so does a new folder (to all of them); the watcher
// and its connection go when the last waiter leaves.
func TestHubShared(t *testing.T) {
	e := newHubEnv(t)
	ctx := t.Context()
	inbox, work := e.folders["INBOX"], e.folders["Work"]

	var subs []*push.Subscription
	for i := range 5 {
		fs := []backend.FolderID{inbox}
		if i%2 == 0 {
			fs = append(fs, work)
		}
		sub, err := e.hub.Watch(ctx, "alice", e.open, fs)
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, sub)
	}
	if n := e.hub.Watchers(); n != 1 {
		t.Fatalf("%d watchers for one user", n)
	}
	// The pooled connection that read the first marks is closed once
	// IDLE runs: the user's operations borrow the IDLE connection.
	e.until("IDLE connection open, the only one", func() bool {
		st := e.store.Stats("alice")
		return st.Watching == 1 && st.Open == 0
	})
	n, err := e.d.ConnectionCount("alice")
	if err != nil {
		t.Fatal(err)
	}
	// The test's own outside client is one more session.
	if n != 2 {
		t.Fatalf("Dovecot counts %d sessions of alice, pool %+v (want 1 IDLE + 1 outside)", n, e.store.Stats("alice"))
	}

	// One waiter is told by OnChange, as a parked request is.
	called := make(chan struct{}, 1)
	subs[1].OnChange(func() {
		select {
		case called <- struct{}{}:
		default:
		}
	})
	e.appendTo("INBOX")
	select {
	case <-called:
	case <-time.After(30 * time.Second):
		t.Fatal("OnChange not called after an APPEND to INBOX")
	}
	subs[1].OnChange(nil)
	for i, sub := range subs {
		if got := e.changed(sub); !slices.Equal(got, []backend.FolderID{inbox}) {
			t.Fatalf("waiter %d after an APPEND to INBOX: %v", i, got)
		}
	}

	// The next poll sees the Inbox moved too (a safety net for what IDLE
	// may miss): let it pass, then start from nothing pending.
	e.ticks <- time.Time{}
	e.ticks <- time.Time{}
	for _, sub := range subs {
		select {
		case <-sub.Changed():
		default:
		}
		sub.Take()
	}

	e.appendTo("Work")
	e.ticks <- time.Time{}
	for i, sub := range subs {
		if i%2 != 0 {
			continue
		}
		if got := e.changed(sub); !slices.Equal(got, []backend.FolderID{work}) {
			t.Fatalf("waiter %d after an APPEND to Work: %v", i, got)
		}
	}
	// A second tick makes sure the first one's notifications are all
	// out; the Inbox-only waiters heard nothing of Work.
	e.ticks <- time.Time{}
	for i, sub := range subs {
		if i%2 != 0 && !quiet(sub) {
			t.Fatalf("waiter %d (Inbox only) told of Work", i)
		}
	}

	// A folder made by another client: every waiter hears that the
	// folder list changed, at the next poll.
	if err := e.out.Create("Projects", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	e.ticks <- time.Time{}
	for i, sub := range subs {
		select {
		case <-sub.Changed():
		case <-time.After(30 * time.Second):
			t.Fatalf("waiter %d: no word of the new folder", i)
		}
		if fs, hier := sub.Take(); !hier || len(fs) != 0 {
			t.Fatalf("waiter %d after CREATE: folders %v, hierarchy %v", i, fs, hier)
		}
	}

	for _, sub := range subs {
		sub.Close()
	}
	if n := e.hub.Watchers(); n != 0 {
		t.Fatalf("%d watchers after the last waiter left", n)
	}
	e.until("IDLE connection closed", func() bool { return e.store.Stats("alice").Watching == 0 })
}

// TestHubReconnects: when the server drops every connection of the user
// (doveadm kick), the watcher gets IDLE back and a later APPEND still
// reaches the waiter.
func TestHubReconnects(t *testing.T) {
	e := newHubEnv(t)
	ctx := t.Context()
	inbox := e.folders["INBOX"]
	sub, err := e.hub.Watch(ctx, "alice", e.open, []backend.FolderID{inbox})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	e.until("IDLE connection open", func() bool { return e.store.Stats("alice").Watching == 1 })

	doveadm, err := exec.LookPath("doveadm")
	if err != nil {
		doveadm = "/usr/bin/doveadm"
	}
	out, err := exec.Command(doveadm, "-c", filepath.Join(e.d.Dir, "dovecot.conf"), "kick", "alice").CombinedOutput()
	if err != nil && !bytes.Contains(out, []byte("kicked")) {
		t.Fatalf("doveadm kick (Debian package dovecot-core): %v: %s", err, out)
	}
	// No poll ticks: only the watcher's reconnect (a poll when IDLE is
	// retried, then IDLE) can report the APPEND.
	e.out = e.d.Dial(t, "alice") // the kick ended the outside client too
	e.appendTo("INBOX")
	if got := e.changed(sub); !slices.Equal(got, []backend.FolderID{inbox}) {
		t.Fatalf("after the reconnect: %v", got)
	}
	e.until("IDLE back", func() bool { return e.store.Stats("alice").Watching == 1 })
}
