package imapstore

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/testsrv"
)

// lendingWatch returns a session of alice on Dovecot and a Watch of her
// Inbox that lends its connection.
func lendingWatch(t *testing.T, opts Options) (*session, *watch) {
	d := testsrv.StartDovecot(t, nil)
	opts.Addr = d.Addr
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()
	bs, err := s.Open(ctx, "alice", d.Users["alice"])
	if err != nil {
		t.Fatal(err)
	}
	sess := bs.(*session)
	t.Cleanup(func() { sess.Close() })
	fs, err := sess.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var inbox backend.FolderID
	for _, f := range fs {
		if f.Role == backend.RoleInbox {
			inbox = f.ID
		}
	}
	bw, err := sess.Watch(ctx, inbox, func() {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bw.Close() })
	return sess, bw.(*watch)
}

// borrow lends the watch's connection to the test.
func borrow(t *testing.T, sess *session, w *watch) *conn {
	t.Helper()
	c, _, err := sess.pool.acquire(t.Context(), sess.key, sess.password, borrowFirst)
	if err != nil || c != w.c {
		t.Fatalf("the watch's connection was not lent: %v", err)
	}
	return c
}

// TestFoldersOfEndedLender: a Folders that starts while the watch is
// ending with its connection lent (unwatch done, Done not yet closed)
// must not touch the connection as if it were idling: it fails with
// ErrUnavailable.
func TestFoldersOfEndedLender(t *testing.T) {
	sess, w := lendingWatch(t, Options{})
	c := borrow(t, sess, w)
	sess.pool.unwatch(w) // the first half of end()
	if _, err := w.Folders(t.Context()); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Folders of an ended lender: %v, want ErrUnavailable", err)
	}
	sess.pool.release(c, true)
}

// TestWaiterCancelledWhileHandedOver: a waiter that takeBack has taken
// from the queue but not yet handed the connection (its round trips
// run) returns when its context ends, and the connection, handed over
// later, goes back to the watch.
func TestWaiterCancelledWhileHandedOver(t *testing.T) {
	sess, w := lendingWatch(t, Options{LendWait: time.Hour})
	c := borrow(t, sess, w)
	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan error, 1)
	go func() {
		_, _, err := sess.pool.acquire(ctx, sess.key, sess.password, borrowFirst)
		got <- err
	}()
	for deadline := time.Now().Add(30 * time.Second); sess.pool.stats().Waiting == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the second operation never waited")
		}
	}
	sess.pool.mu.Lock()
	wt := sess.pool.nextWaiter(w)
	sess.pool.mu.Unlock()
	cancel()
	select {
	case err := <-got:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the cancelled waiter is still blocked")
	}
	// The hand-over arrives now (as the borrower's release would make
	// it): the connection goes back to the watch.
	wt.c <- c
	<-sess.pool.slots // the borrower's slot, as release frees it
	for deadline := time.Now().Add(30 * time.Second); sess.pool.stats().Lent != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the connection never went back to the watch: %+v", sess.pool.stats())
		}
	}
}
