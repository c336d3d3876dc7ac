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
// connection, lists the folders on that connection in between, ends with
// its context or Close, refuses a missing folder, and ends with
// ErrUnavailable when the store closes.
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
	changed := make(chan struct{}, 16)
	wt, err := w.Watch(wctx, f.ID, func() {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
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
		case <-wt.Done():
			t.Fatalf("%s: watch ended: %v", ch.name, wt.Err())
		}
		// Folders on the watch connection, between changes: the marks
		// are there and the watch goes on.
		fs, err := wt.Folders(ctx)
		if err != nil {
			t.Fatalf("%s: Folders on the watch: %v", ch.name, err)
		}
		if len(fs) != len(folders) {
			t.Fatalf("%s: Folders on the watch lists %d folders, the session %d", ch.name, len(fs), len(folders))
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
	if st := s.Stats("alice"); st.Watching != 1 || st.Open > 1 {
		t.Fatalf("Folders on the watch used another connection: %+v", st)
	}
	stop()
	<-wt.Done()
	if err := wt.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("watch after cancel: %v, want context.Canceled", err)
	}
	wt2, err := w.Watch(ctx, f.ID, func() {})
	if err != nil {
		t.Fatal(err)
	}
	wt2.Close()
	wt2.Close()
	if err := wt2.Err(); err != nil {
		t.Fatalf("watch after Close: %v", err)
	}

	t.Run("missing", func(t *testing.T) {
		_, err := w.Watch(ctx, "1.NoSuchFolder", func() {})
		if !errors.Is(err, backend.ErrFolderNotFound) {
			t.Fatalf("Watch of a missing folder: %v", err)
		}
	})
	if st := s.Stats("alice"); st.Open > 1 || st.Watching != 0 {
		t.Fatalf("watches left connections behind: %+v", st)
	}
	t.Run("store closed", func(t *testing.T) {
		wt, err := w.Watch(ctx, f.ID, func() {})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		<-wt.Done()
		if err := wt.Err(); !errors.Is(err, backend.ErrUnavailable) {
			t.Fatalf("watch when the store closed: %v, want ErrUnavailable", err)
		}
	})
}
