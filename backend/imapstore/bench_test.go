package imapstore_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
)

// benchFolder starts Dovecot, fills a folder with n messages and returns
// an open session and the folder.
func benchFolder(b *testing.B, n int) (backend.Session, backend.Folder, *outside) {
	d := testsrv.StartDovecot(b, nil)
	s, err := imapstore.New(imapstore.Options{Addr: d.Addr})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	out := dialOutside(b, d.Addr, "alice", d.Users["alice"])
	out.CreateFolder("Bench")
	for i := range n {
		out.Append("Bench", []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i)), nil, time.Now())
	}
	sess, err := s.Open(b.Context(), "alice", d.Users["alice"])
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sess.Close() })
	folders, err := sess.Folders(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range folders {
		if f.Name == "Bench" {
			return sess, f, out
		}
	}
	b.Fatal("no Bench folder")
	return nil, backend.Folder{}, nil
}

// BenchmarkOpenPooled is the per-request cost of getting a session for a
// user whose connections are pooled.
func BenchmarkOpenPooled(b *testing.B) {
	d := testsrv.StartDovecot(b, nil)
	s, err := imapstore.New(imapstore.Options{Addr: d.Addr})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	for b.Loop() {
		sess, err := s.Open(ctx, "alice", d.Users["alice"])
		if err != nil {
			b.Fatal(err)
		}
		sess.Close()
	}
}

// BenchmarkFolders is one FolderSync's LIST-STATUS round trip.
func BenchmarkFolders(b *testing.B) {
	sess, _, _ := benchFolder(b, 0)
	for b.Loop() {
		if _, err := sess.Folders(b.Context()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChangesUnchanged is a Sync or Ping check of an unchanged
// 1000-message folder: one STATUS with CONDSTORE.
func BenchmarkChangesUnchanged(b *testing.B) {
	sess, f, _ := benchFolder(b, 1000)
	cs, err := sess.Changes(b.Context(), f.ID, nil, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		got, err := sess.Changes(b.Context(), f.ID, cs.State, time.Time{})
		if err != nil || got.Scan != backend.ScanSkipped {
			b.Fatalf("%+v %v", got, err)
		}
	}
}

// BenchmarkChangesOneFlag is the same folder after one flag change: the
// CONDSTORE CHANGEDSINCE path.
func BenchmarkChangesOneFlag(b *testing.B) {
	sess, f, out := benchFolder(b, 1000)
	cs, err := sess.Changes(b.Context(), f.ID, nil, time.Time{})
	if err != nil {
		b.Fatal(err)
	}
	out.SetFlags("Bench", 500, []string{backend.FlagSeen})
	for b.Loop() {
		got, err := sess.Changes(b.Context(), f.ID, cs.State, time.Time{})
		if err != nil || got.Scan != backend.ScanModSeq || len(got.Changed) != 1 {
			b.Fatalf("%+v %v", got, err)
		}
	}
}

// BenchmarkChangesFirst is the first snapshot of a 1000-message folder.
func BenchmarkChangesFirst(b *testing.B) {
	sess, f, _ := benchFolder(b, 1000)
	for b.Loop() {
		got, err := sess.Changes(b.Context(), f.ID, nil, time.Time{})
		if err != nil || got.Added.Len() != 1000 {
			b.Fatalf("%+v %v", got, err)
		}
	}
}
