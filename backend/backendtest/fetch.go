package backendtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
)

// contentsSeen is what one Session.Contents call handed over, by request
// and UID; it fails the test when a message comes twice.
type contentsSeen map[int]map[backend.UID]backend.Contents

func collectContents(t *testing.T, sess backend.Session, id backend.FolderID, reqs []backend.ContentRequest) contentsSeen {
	t.Helper()
	seen := make(contentsSeen)
	err := sess.Contents(t.Context(), id, reqs, func(c backend.Contents) error {
		if c.Request < 0 || c.Request >= len(reqs) {
			return fmt.Errorf("UID %d: request index %d out of range", c.UID, c.Request)
		}
		if !reqs[c.Request].UIDs.Contains(c.UID) {
			return fmt.Errorf("UID %d handed over for request %d, which did not ask for it", c.UID, c.Request)
		}
		if seen[c.Request] == nil {
			seen[c.Request] = make(map[backend.UID]backend.Contents)
		}
		if _, dup := seen[c.Request][c.UID]; dup {
			return fmt.Errorf("UID %d handed over twice for request %d", c.UID, c.Request)
		}
		seen[c.Request][c.UID] = c
		return nil
	})
	if err != nil {
		t.Fatalf("Contents: %v", err)
	}
	return seen
}

// wantContents compares what Contents gave for one message with what the
// per-message reads (Message, Section) give.
func wantContents(t *testing.T, sess backend.Session, id backend.FolderID, req backend.ContentRequest, got backend.Contents) {
	t.Helper()
	ctx := t.Context()
	if req.Summary {
		sums, err := sess.Summaries(ctx, id, backend.NewUIDSet(got.UID))
		if err != nil || len(sums) != 1 {
			t.Fatalf("Summaries(%d): %v (%d)", got.UID, err, len(sums))
		}
		want := sums[0]
		want.Envelope = backend.Envelope{} // not read with contents
		if req.NoStructure {
			want.Structure = nil
		}
		if got.Summary == nil || !reflect.DeepEqual(*got.Summary, want) {
			t.Errorf("UID %d: summary %+v, want %+v", got.UID, got.Summary, want)
		}
	} else if got.Summary != nil {
		t.Errorf("UID %d: summary not asked for, got %+v", got.UID, got.Summary)
	}
	if req.Whole {
		rc, err := sess.Message(ctx, id, got.UID)
		if err != nil {
			t.Fatalf("Message(%d): %v", got.UID, err)
		}
		want, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("Message(%d): %v", got.UID, err)
		}
		if req.WholeLimit > 0 && int64(len(want)) > req.WholeLimit {
			want = want[:req.WholeLimit]
		}
		if got.Whole == nil || !bytes.Equal(got.Whole, want) {
			t.Errorf("UID %d: whole message is %d bytes %.40q..., want %d bytes %.40q...", got.UID, len(got.Whole), got.Whole, len(want), want)
		}
	} else if got.Whole != nil {
		t.Errorf("UID %d: whole message not asked for, got %d bytes", got.UID, len(got.Whole))
	}
	if req.Header {
		want, err := sess.Section(ctx, id, got.UID, "HEADER", 0, 0)
		if err != nil {
			t.Fatalf("Section(%d, HEADER): %v", got.UID, err)
		}
		if got.Header == nil || !bytes.Equal(got.Header, want) {
			t.Errorf("UID %d: header %q, want %q", got.UID, got.Header, want)
		}
	} else if got.Header != nil {
		t.Errorf("UID %d: header not asked for, got %q", got.UID, got.Header)
	}
	if len(got.Sections) != len(req.Sections) {
		t.Fatalf("UID %d: %d sections, want %d", got.UID, len(got.Sections), len(req.Sections))
	}
	for i, sr := range req.Sections {
		want, err := sess.Section(ctx, id, got.UID, sr.Part, 0, sr.Limit)
		if err != nil {
			t.Fatalf("Section(%d, %q, %d): %v", got.UID, sr.Part, sr.Limit, err)
		}
		if got.Sections[i] == nil || !bytes.Equal(got.Sections[i], want) {
			t.Errorf("UID %d: section %q<0.%d> is %q, want %q", got.UID, sr.Part, sr.Limit, got.Sections[i], want)
		}
	}
}

func (s *suite) testContents(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("Contents")
	date := time.Now()
	small := []backend.UID{
		out.Append("Contents", message(1), nil, date),
		out.Append("Contents", message(2), []string{backend.FlagFlagged}, date),
	}
	multi := out.Append("Contents", multipartMessage, nil, date)
	big := bytes.Repeat([]byte("0123456789abcdef"), 48<<10/16) // 48 KiB body
	bigMsg := append(append([]byte(nil), message(3)[:bytes.Index(message(3), []byte("\r\n\r\n"))+4]...), big...)
	large := out.Append("Contents", bigMsg, nil, date)
	missing := large + 100
	sess := s.session(t)
	f := folderNamed(t, sess, "Contents")

	reqs := []backend.ContentRequest{
		{UIDs: backend.NewUIDSet(append(small, missing)...), Whole: true},
		{UIDs: backend.NewUIDSet(multi, missing), Header: true, Sections: []backend.SectionRequest{
			{Part: "1", Limit: 10}, {Part: "2"}, {Part: "2.MIME"}, {Part: "3"},
		}},
		{UIDs: backend.NewUIDSet(large), Summary: true, Whole: true, WholeLimit: 100},
		{UIDs: backend.NewUIDSet(large, multi), Header: true, Sections: []backend.SectionRequest{
			{Part: "1", Limit: 1001}, {Part: "TEXT", Limit: 5},
		}},
		{UIDs: backend.NewUIDSet(missing), Whole: true},
		{UIDs: backend.NewUIDSet(append(small, multi)...), Summary: true},
		{UIDs: backend.NewUIDSet(append(small, multi, missing)...), Summary: true, NoStructure: true, Whole: true, WholeLimit: 200},
	}
	seen := collectContents(t, sess, f.ID, reqs)
	want := map[int][]backend.UID{0: small, 1: {multi}, 2: {large}, 3: {multi, large}, 5: append(small, multi), 6: append(small, multi)}
	for i, req := range reqs {
		if len(seen[i]) != len(want[i]) {
			t.Errorf("request %d: got %d messages, want %v", i, len(seen[i]), want[i])
		}
		for _, uid := range want[i] {
			got, ok := seen[i][uid]
			if !ok {
				t.Errorf("request %d: UID %d missing", i, uid)
				continue
			}
			wantContents(t, sess, f.ID, req, got)
		}
	}
	// Spot checks against what was appended, not only against Section.
	if got := seen[0][small[1]].Whole; !bytes.Equal(got, message(2)) {
		t.Errorf("whole message 2 = %q, want %q", got, message(2))
	}
	if got := seen[1][multi].Sections; len(got) == 4 && (string(got[0]) != "See the at" || string(got[1]) != attachmentBody || len(got[3]) != 0) {
		t.Errorf("multipart sections = %q", got)
	}
	if got := seen[2][large].Whole; !bytes.Equal(got, bigMsg[:100]) {
		t.Errorf("whole<0.100> = %q, want %q", got, bigMsg[:100])
	}
	if got := seen[3][large].Sections; len(got) == 2 && (!bytes.Equal(got[0], big[:1001]) || string(got[1]) != "01234") {
		t.Errorf("large message sections = %.40q..., %q", got[0], got[1])
	}
	if got := seen[3][multi].Sections; len(got) == 2 && string(got[0]) != "See the attached report." {
		t.Errorf("section 1<0.1001> of a shorter part = %q", got[0])
	}
	for uid, flags := range out.Messages("Contents") {
		if backend.HasFlag(flags, backend.FlagSeen) {
			t.Errorf("Contents set \\Seen on UID %d: %q", uid, flags)
		}
	}

	// An error from f stops the read, comes back as is, and leaves the
	// session usable.
	stop := errors.New("enough")
	calls := 0
	err := sess.Contents(ctx, f.ID, reqs, func(backend.Contents) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) || calls != 1 {
		t.Errorf("Contents with a failing f: %v after %d calls, want %v after 1", err, calls, stop)
	}
	if _, err := sess.Summaries(ctx, f.ID, backend.NewUIDSet(small...)); err != nil {
		t.Errorf("Summaries after a stopped Contents: %v", err)
	}

	none := func(backend.Contents) error { return errors.New("no message expected") }
	wantErr(t, "Contents of a missing folder", sess.Contents(ctx, "1.NoSuchFolder", reqs[:1], none), backend.ErrFolderNotFound)
	for _, bad := range []string{"x", "1.x", "0", "MIME", ""} {
		err := sess.Contents(ctx, f.ID, []backend.ContentRequest{{UIDs: backend.NewUIDSet(small...), Sections: []backend.SectionRequest{{Part: bad}}}}, none)
		wantErr(t, fmt.Sprintf("Contents of section %q", bad), err, backend.ErrInvalidSection)
	}
	if err := sess.Contents(ctx, f.ID, nil, none); err != nil {
		t.Errorf("Contents without requests: %v", err)
	}
}

// testContentsMany reads a window larger than Sync's largest (512) in one
// request per shape and checks every message byte for byte.
func (s *suite) testContentsMany(t *testing.T) {
	const n = 600
	out := s.h.Outside(t)
	out.CreateFolder("ContentsMany")
	var all []backend.UID
	msgs := make(map[backend.UID][]byte)
	for i := range n {
		msg := message(1000 + i)
		uid := out.Append("ContentsMany", msg, nil, time.Now())
		all = append(all, uid)
		msgs[uid] = msg
	}
	sess := s.session(t)
	f := folderNamed(t, sess, "ContentsMany")
	set := backend.NewUIDSet(all...)
	// Every other message read whole, the others by header and text.
	var even, odd backend.UIDSet
	for i, uid := range all {
		if i%2 == 0 {
			even.AddUID(uid)
		} else {
			odd.AddUID(uid)
		}
	}
	reqs := []backend.ContentRequest{
		{UIDs: set, Summary: true, Whole: true},
		{UIDs: even, Header: true, Sections: []backend.SectionRequest{{Part: "1", Limit: 8}}},
		{UIDs: odd, Sections: []backend.SectionRequest{{Part: "TEXT"}}},
	}
	seen := collectContents(t, sess, f.ID, reqs)
	if len(seen[0]) != n || len(seen[1]) != even.Len() || len(seen[2]) != odd.Len() {
		t.Fatalf("got %d, %d, %d messages, want %d, %d, %d", len(seen[0]), len(seen[1]), len(seen[2]), n, even.Len(), odd.Len())
	}
	for uid, msg := range msgs {
		hdrEnd := bytes.Index(msg, []byte("\r\n\r\n")) + 4
		if got := seen[0][uid]; !bytes.Equal(got.Whole, msg) || got.Summary == nil || got.Summary.UID != uid || got.Summary.Size != int64(len(msg)) {
			t.Fatalf("UID %d: whole message %q, summary %+v; want %q", uid, got.Whole, got.Summary, msg)
		}
		if c, ok := seen[1][uid]; ok && (!bytes.Equal(c.Header, msg[:hdrEnd]) || !bytes.Equal(c.Sections[0], msg[hdrEnd:hdrEnd+8])) {
			t.Fatalf("UID %d: header %q and text<0.8> %q", uid, c.Header, c.Sections[0])
		}
		if c, ok := seen[2][uid]; ok && !bytes.Equal(c.Sections[0], msg[hdrEnd:]) {
			t.Fatalf("UID %d: TEXT %q, want %q", uid, c.Sections[0], msg[hdrEnd:])
		}
	}
	for uid, flags := range out.Messages("ContentsMany") {
		if backend.HasFlag(flags, backend.FlagSeen) {
			t.Fatalf("Contents set \\Seen on UID %d: %q", uid, flags)
		}
	}
}
