package imapstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
)

// TestWatch: one IDLE-based Watch on Dovecot reports an arrival, a flag
// change and an expunge made elsewhere, one after the other on the same
// connection, ends with its context, refuses a missing folder, and ends
// with ErrUnavailable when the store closes.
func TestWatch(t *testing.T) {
	d := testsrv.StartDovecot(t, nil)
	s := newStore(t, imapstore.Options{Addr: d.Addr})
	ctx := t.Context()
	out := dialOutside(t, d.Addr, "alice", d.Users["alice"])
	out.CreateFolder("Watched")
	u := out.Append("Watched", []byte("Subject: a\r\n\r\na\r\n"), nil, time.Now())
	sess, err := s.Open(ctx, "alice", d.Users["alice"])
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	w := sess.(backend.Watcher)
	var f backend.Folder
	folders, err := sess.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range folders {
		if g.Name == "Watched" {
			f = g
		}
	}

	wctx, stop := context.WithCancel(ctx)
	ready := make(chan struct{}, 1)
	changed := make(chan struct{}, 16)
	done := make(chan error, 1)
	go func() {
		done <- w.Watch(wctx, f.ID, func() { ready <- struct{}{} }, func() {
			select {
			case changed <- struct{}{}:
			default:
			}
		})
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Watch ended before IDLE: %v", err)
	}
	if st := s.Stats("alice"); st.Watching != 1 {
		t.Fatalf("stats while watching %+v", st)
	}
	var u2 backend.UID
	for _, ch := range []struct {
		name   string
		change func()
	}{
		{"arrival", func() { u2 = out.Append("Watched", []byte("Subject: b\r\n\r\nb\r\n"), nil, time.Now()) }},
		{"flag", func() { out.SetFlags("Watched", u, []string{backend.FlagSeen}) }},
		{"expunge", func() { out.Expunge("Watched", u2) }},
	} {
		ch.change()
		select {
		case <-changed:
		case err := <-done:
			t.Fatalf("%s: Watch ended: %v", ch.name, err)
		}
		// Dovecot may report one change in several responses: wait
		// until it is quiet before the next change.
		for quiet := false; !quiet; {
			select {
			case <-changed:
			case <-time.After(200 * time.Millisecond):
				quiet = true
			}
		}
	}
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Watch after cancel: %v, want context.Canceled", err)
	}

	t.Run("missing", func(t *testing.T) {
		err := w.Watch(ctx, "1.NoSuchFolder", func() {}, func() {})
		if !errors.Is(err, backend.ErrFolderNotFound) {
			t.Fatalf("Watch of a missing folder: %v", err)
		}
	})
	if st := s.Stats("alice"); st.Open > 1 || st.Watching != 0 {
		t.Fatalf("watches left connections behind: %+v", st)
	}
	t.Run("store closed", func(t *testing.T) {
		ready := make(chan struct{}, 1)
		done := make(chan error, 1)
		go func() { done <- w.Watch(ctx, f.ID, func() { ready <- struct{}{} }, func() {}) }()
		<-ready
		s.Close()
		if err := <-done; !errors.Is(err, backend.ErrUnavailable) {
			t.Fatalf("Watch when the store closed: %v, want ErrUnavailable", err)
		}
	})
}
