package imapstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
)

// TestWatch: IDLE-based Watch on Dovecot wakes for an arrival, a flag
// change and an expunge made elsewhere, returns at once for a change made
// before it started, and ends with the context when nothing happens.
func TestWatch(t *testing.T) {
	d := testsrv.StartDovecot(t, nil)
	var wire syncBuffer
	s := newStore(t, imapstore.Options{Addr: d.Addr, DebugWriter: &wire})
	// idling waits until n IDLE commands have been accepted by the server.
	idling := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for strings.Count(wire.String(), "\r\n+ idling") < n {
			if time.Now().After(deadline) {
				t.Fatalf("IDLE %d never started", n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
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
	state := func() *backend.FolderState {
		cs, err := sess.Changes(ctx, f.ID, nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return cs.State
	}

	var u2 backend.UID
	changes := []struct {
		name   string
		change func()
	}{
		{"arrival", func() { u2 = out.Append("Watched", []byte("Subject: b\r\n\r\nb\r\n"), nil, time.Now()) }},
		{"flag", func() { out.SetFlags("Watched", u, []string{backend.FlagSeen}) }},
		{"expunge", func() { out.Expunge("Watched", u2) }},
	}
	for i, ch := range changes {
		t.Run(ch.name, func(t *testing.T) {
			st := state()
			done := make(chan error, 1)
			go func() { done <- w.Watch(ctx, f.ID, st) }()
			// Change only once IDLE runs, so that IDLE (not the marks
			// at SELECT) has to notice.
			idling(i + 1)
			ch.change()
			if err := <-done; err != nil {
				t.Fatalf("Watch: %v", err)
			}
			cs, err := sess.Changes(ctx, f.ID, st, time.Time{})
			if err != nil || cs.Empty() {
				t.Fatalf("Changes after the wake-up: %+v, %v", cs, err)
			}
		})
	}

	t.Run("before", func(t *testing.T) {
		st := state()
		out.SetFlags("Watched", u, []string{backend.FlagFlagged})
		if err := w.Watch(ctx, f.ID, st); err != nil {
			t.Fatalf("Watch with a stale state: %v", err)
		}
	})
	t.Run("quiet", func(t *testing.T) {
		qctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		err := w.Watch(qctx, f.ID, state())
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Watch of a quiet folder: %v, want the deadline", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		err := w.Watch(ctx, "1.NoSuchFolder", nil)
		if !errors.Is(err, backend.ErrFolderNotFound) {
			t.Fatalf("Watch of a missing folder: %v", err)
		}
	})
	if st := s.Stats("alice"); st.Open > 1 || st.Watching != 0 {
		t.Fatalf("watches left connections behind: %+v", st)
	}
	t.Run("store closed", func(t *testing.T) {
		n := strings.Count(wire.String(), "\r\n+ idling")
		done := make(chan error, 1)
		go func() { done <- w.Watch(ctx, f.ID, nil) }()
		idling(n + 1)
		if st := s.Stats("alice"); st.Watching != 1 {
			t.Fatalf("stats while watching %+v", st)
		}
		s.Close()
		if err := <-done; !errors.Is(err, backend.ErrUnavailable) {
			t.Fatalf("Watch when the store closed: %v, want ErrUnavailable", err)
		}
	})
}
