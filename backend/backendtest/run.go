package backendtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
)

// Run runs the whole suite as subtests of t.
func Run(t *testing.T, h Harness) {
	s := &suite{h: h}
	t.Run("Auth", s.testAuth)
	t.Run("Folders", s.testFolders)
	t.Run("FolderEdits", s.testFolderEdits)
	t.Run("Changes", s.testChanges)
	t.Run("ChangesWindow", s.testChangesWindow)
	t.Run("UIDValidity", s.testUIDValidity)
	t.Run("Summaries", s.testSummaries)
	t.Run("Recheck", s.testRecheck)
	t.Run("Contents", s.testContents)
	t.Run("ContentsMany", s.testContentsMany)
	t.Run("Section", s.testSection)
	t.Run("OpenPart", s.testOpenPart)
	t.Run("Message", s.testMessage)
	t.Run("StoreFlags", s.testStoreFlags)
	t.Run("Move", s.testMove)
	t.Run("Delete", s.testDelete)
	t.Run("Append", s.testAppend)
	t.Run("EmptyFolder", s.testEmptyFolder)
	t.Run("Concurrent", s.testConcurrent)
}

type suite struct {
	h Harness
}

func (s *suite) store(t *testing.T) backend.Store {
	t.Helper()
	st := s.h.New(t)
	if c, ok := st.(interface{ Close() error }); ok {
		t.Cleanup(func() {
			if err := c.Close(); err != nil {
				t.Errorf("closing the store: %v", err)
			}
		})
	}
	return st
}

func (s *suite) session(t *testing.T) backend.Session {
	t.Helper()
	st := s.store(t)
	sess, err := st.Open(t.Context(), s.h.User, s.h.Password)
	if err != nil {
		t.Fatalf("Open(%s): %v", s.h.User, err)
	}
	t.Cleanup(func() { sess.Close() })
	return sess
}

func folderNamed(t *testing.T, sess backend.Session, name string) backend.Folder {
	t.Helper()
	folders, err := sess.Folders(t.Context())
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	for _, f := range folders {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no folder %q in %v", name, names(folders))
	return backend.Folder{}
}

func names(folders []backend.Folder) []string {
	var out []string
	for _, f := range folders {
		out = append(out, f.Name)
	}
	return out
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

// message returns a small plain-text message numbered n.
func message(n int) []byte {
	return []byte(fmt.Sprintf("From: Alice Example <alice@example.org>\r\n"+
		"To: Bob <bob@example.org>, carol@example.net\r\n"+
		"Subject: Message %d\r\n"+
		"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n"+
		"Message-ID: <m%d@example.org>\r\n"+
		"MIME-Version: 1.0\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n"+
		"\r\n"+
		"Hello number %d.\r\n", n, n, n))
}

// multipartMessage has a text part and a PDF attachment whose encoded body
// is attachmentBody.
const attachmentBody = "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSPj4Kc3RyZWFtCg=="

var multipartMessage = []byte("From: Alice Example <alice@example.org>\r\n" +
	"To: Bob <bob@example.org>\r\n" +
	"Subject: With attachment\r\n" +
	"Date: Mon, 02 Nov 2026 10:00:00 +0000\r\n" +
	"Message-ID: <att@example.org>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"XX\"\r\n" +
	"\r\n" +
	"--XX\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"\r\n" +
	"See the attached report.\r\n" +
	"--XX\r\n" +
	"Content-Type: application/pdf; name=\"report.pdf\"\r\n" +
	"Content-Disposition: attachment; filename=\"report.pdf\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	attachmentBody + "\r\n" +
	"--XX--\r\n")

func (s *suite) testAuth(t *testing.T) {
	ctx := t.Context()
	st := s.store(t)
	if err := st.Authenticate(ctx, s.h.User, s.h.Password); err != nil {
		t.Fatalf("Authenticate with the right password: %v", err)
	}
	wantErr(t, "Authenticate with a wrong password", st.Authenticate(ctx, s.h.User, s.h.Password+"x"), backend.ErrAuthFailed)
	// A pooled user must not let a wrong password through.
	sess, err := st.Open(ctx, s.h.User, s.h.Password)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if _, err := sess.Folders(ctx); err != nil {
		t.Fatalf("Folders: %v", err)
	}
	sess.Close()
	_, err = st.Open(ctx, s.h.User, "not-"+s.h.Password)
	wantErr(t, "Open with a wrong password while the user is pooled", err, backend.ErrAuthFailed)
	_, err = st.Open(ctx, "nosuchuser", "pw")
	wantErr(t, "Open of an unknown user", err, backend.ErrAuthFailed)
	// And the right password still works after the failures.
	if err := st.Authenticate(ctx, s.h.User, s.h.Password); err != nil {
		t.Fatalf("Authenticate after failures: %v", err)
	}
	if _, err := sess.Folders(ctx); !errors.Is(err, backend.ErrClosed) {
		t.Fatalf("Folders on a closed session: %v, want ErrClosed", err)
	}

	dead := s.h.Unreachable(t)
	wantErr(t, "Authenticate against an unreachable server", dead.Authenticate(ctx, s.h.User, s.h.Password), backend.ErrUnavailable)
	_, err = dead.Open(ctx, s.h.User, s.h.Password)
	wantErr(t, "Open against an unreachable server", err, backend.ErrUnavailable)
}

func (s *suite) testFolders(t *testing.T) {
	out := s.h.Outside(t)
	out.CreateFolder("Lists")
	out.CreateFolder("Lists/Go")
	sess := s.session(t)
	folders, err := sess.Folders(t.Context())
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	byName := map[string]backend.Folder{}
	ids := map[backend.FolderID]string{}
	for _, f := range folders {
		if other, dup := ids[f.ID]; dup {
			t.Fatalf("folders %q and %q share ID %q", other, f.Name, f.ID)
		}
		ids[f.ID] = f.Name
		byName[f.Name] = f
	}
	if got, want := slices.Sorted(maps.Keys(byName)), slices.Sorted(slices.Values(out.Folders())); !slices.Equal(got, want) {
		t.Fatalf("Folders = %q, server has %q", got, want)
	}
	if folders[0].Name != "INBOX" || folders[0].Role != backend.RoleInbox || folders[0].Parent != "" {
		t.Fatalf("first folder = %+v, want INBOX with RoleInbox at the top", folders[0])
	}
	for name, role := range map[string]backend.Role{"Drafts": backend.RoleDrafts, "Sent": backend.RoleSent, "Trash": backend.RoleTrash, "Junk": backend.RoleJunk, "Lists": backend.RoleNone, "Lists/Go": backend.RoleNone} {
		f, ok := byName[name]
		if !ok {
			t.Fatalf("no folder %q", name)
		}
		if f.Role != role {
			t.Errorf("%s: role %v, want %v", name, f.Role, role)
		}
		if f.UIDValidity != out.UIDValidity(name) {
			t.Errorf("%s: UIDValidity %d, server says %d", name, f.UIDValidity, out.UIDValidity(name))
		}
		if f.Messages != uint32(len(out.Messages(name))) {
			t.Errorf("%s: Messages %d, server has %d", name, f.Messages, len(out.Messages(name)))
		}
		if f.UIDNext == 0 {
			t.Errorf("%s: UIDNext 0", name)
		}
		if (f.HighestModSeq != 0) != s.h.CondStore {
			t.Errorf("%s: HighestModSeq %d with CONDSTORE %v", name, f.HighestModSeq, s.h.CondStore)
		}
	}
	goFolder := byName["Lists/Go"]
	if goFolder.Parent != byName["Lists"].ID || goFolder.DisplayName != "Go" || goFolder.Delimiter != '/' {
		t.Errorf("Lists/Go = %+v, want parent %q, display name Go, delimiter /", goFolder, byName["Lists"].ID)
	}
	for i, f := range folders {
		if f.Parent == "" {
			continue
		}
		if j := slices.IndexFunc(folders, func(p backend.Folder) bool { return p.ID == f.Parent }); j < 0 || j > i {
			t.Errorf("%s: parent at %d, child at %d: parents must come first", f.Name, j, i)
		}
	}

	// IDs are stable across a new store (new connections).
	again, err := s.session(t).Folders(t.Context())
	if err != nil {
		t.Fatalf("Folders on a second store: %v", err)
	}
	for _, f := range again {
		if byName[f.Name].ID != f.ID {
			t.Errorf("%s: ID %q, first store said %q", f.Name, f.ID, byName[f.Name].ID)
		}
	}
}

func (s *suite) testFolderEdits(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	sess := s.session(t)
	has := func(name string) bool { return slices.Contains(out.Folders(), name) }

	proj, err := sess.CreateFolder(ctx, "", "Projects")
	if err != nil {
		t.Fatalf("CreateFolder Projects: %v", err)
	}
	if proj.Name != "Projects" || proj.Parent != "" || proj.Role != backend.RoleNone || !has("Projects") {
		t.Fatalf("created %+v; server folders %q", proj, out.Folders())
	}
	sub, err := sess.CreateFolder(ctx, proj.ID, "2026")
	if err != nil {
		t.Fatalf("CreateFolder Projects/2026: %v", err)
	}
	if sub.Name != "Projects/2026" || sub.Parent != proj.ID || sub.DisplayName != "2026" || !has("Projects/2026") {
		t.Fatalf("created %+v; server folders %q", sub, out.Folders())
	}
	_, err = sess.CreateFolder(ctx, "", "Projects")
	wantErr(t, "CreateFolder of an existing name", err, backend.ErrFolderExists)
	_, err = sess.CreateFolder(ctx, "", "inbox")
	wantErr(t, "CreateFolder inbox", err, backend.ErrFolderExists)
	_, err = sess.CreateFolder(ctx, "1.NoSuchParent", "x")
	wantErr(t, "CreateFolder under a missing parent", err, backend.ErrParentNotFound)
	_, err = sess.CreateFolder(ctx, "", "a/b")
	wantErr(t, "CreateFolder with the delimiter in the name", err, backend.ErrInvalidName)
	_, err = sess.CreateFolder(ctx, "", "")
	wantErr(t, "CreateFolder with no name", err, backend.ErrInvalidName)

	// Rename and move to the top level in one step.
	moved, err := sess.RenameFolder(ctx, sub.ID, "", "Archive 2026")
	if err != nil {
		t.Fatalf("RenameFolder: %v", err)
	}
	if moved.Name != "Archive 2026" || moved.Parent != "" || !has("Archive 2026") || has("Projects/2026") {
		t.Fatalf("renamed to %+v; server folders %q", moved, out.Folders())
	}
	// And back under Projects with a new name.
	back, err := sess.RenameFolder(ctx, moved.ID, proj.ID, "Old")
	if err != nil {
		t.Fatalf("RenameFolder under a parent: %v", err)
	}
	if back.Name != "Projects/Old" || back.Parent != proj.ID || !has("Projects/Old") || has("Archive 2026") {
		t.Fatalf("renamed to %+v; server folders %q", back, out.Folders())
	}
	_, err = sess.RenameFolder(ctx, moved.ID, "", "Whatever")
	wantErr(t, "RenameFolder of a stale ID", err, backend.ErrFolderNotFound)
	_, err = sess.RenameFolder(ctx, back.ID, "", "Projects")
	wantErr(t, "RenameFolder onto an existing name", err, backend.ErrFolderExists)
	_, err = sess.RenameFolder(ctx, back.ID, "9.Nowhere", "x")
	wantErr(t, "RenameFolder under a missing parent", err, backend.ErrParentNotFound)
	_, err = sess.RenameFolder(ctx, proj.ID, back.ID, "Loop")
	wantErr(t, "RenameFolder below itself", err, backend.ErrParentNotFound)
	for _, name := range []string{"INBOX", "Trash", "Sent", "Drafts"} {
		f := folderNamed(t, sess, name)
		_, err = sess.RenameFolder(ctx, f.ID, "", name+"2")
		wantErr(t, "RenameFolder "+name, err, backend.ErrSpecialFolder)
		wantErr(t, "DeleteFolder "+name, sess.DeleteFolder(ctx, f.ID), backend.ErrSpecialFolder)
		if !has(name) {
			t.Fatalf("%s is gone after refused changes", name)
		}
	}

	// Names beyond ASCII travel as modified UTF-7 and come back as UTF-8.
	intl, err := sess.CreateFolder(ctx, proj.ID, "Entwürfe & Рабочие")
	if err != nil {
		t.Fatalf("CreateFolder with a UTF-8 name: %v", err)
	}
	if intl.Name != "Projects/Entwürfe & Рабочие" || intl.DisplayName != "Entwürfe & Рабочие" || !has("Projects/Entwürfe & Рабочие") {
		t.Fatalf("created %+v; server folders %q", intl, out.Folders())
	}
	if _, err := sess.Changes(ctx, intl.ID, nil, time.Time{}); err != nil {
		t.Fatalf("Changes of the UTF-8 folder: %v", err)
	}

	// Deleting a folder takes its subfolders.
	proj = folderNamed(t, sess, "Projects")
	if err := sess.DeleteFolder(ctx, proj.ID); err != nil {
		t.Fatalf("DeleteFolder: %v", err)
	}
	if has("Projects") || has("Projects/Old") || has("Projects/Entwürfe & Рабочие") {
		t.Fatalf("server folders after delete: %q", out.Folders())
	}
	wantErr(t, "DeleteFolder twice", sess.DeleteFolder(ctx, proj.ID), backend.ErrFolderNotFound)
}

func uids(set backend.UIDSet) []backend.UID { return slices.Collect(set.All()) }

func (s *suite) testChanges(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("Sync")
	now := time.Now()
	u1 := out.Append("Sync", message(1), nil, now)
	u2 := out.Append("Sync", message(2), []string{backend.FlagSeen}, now)
	u3 := out.Append("Sync", message(3), nil, now)
	sess := s.session(t)
	f := folderNamed(t, sess, "Sync")

	cs, err := sess.Changes(ctx, f.ID, nil, time.Time{})
	if err != nil {
		t.Fatalf("first Changes: %v", err)
	}
	if got := uids(cs.Added); !slices.Equal(got, []backend.UID{u1, u2, u3}) {
		t.Fatalf("first Changes added %v, want %v", got, []backend.UID{u1, u2, u3})
	}
	if len(cs.Changed) != 0 || cs.Expunged.Len() != 0 {
		t.Fatalf("first Changes: %+v", cs)
	}
	// Added messages are tracked without flags until the caller records
	// what it read.
	if got := cs.State.UIDs.String(); got != backend.NewUIDSet(u1, u2, u3).String() || len(cs.State.FlagsOf(u2)) != 0 {
		t.Fatalf("first state tracks %s, flags of %d %q; want all, none", got, u2, cs.State.FlagsOf(u2))
	}
	recordAdded(t, sess, f.ID, cs)
	if got := cs.State.FlagsOf(u2); !slices.Equal(got, []string{backend.FlagSeen}) {
		t.Fatalf("state flags of %d = %q, want \\Seen", u2, got)
	}
	state := cs.State

	// Nothing happened.
	cs, err = sess.Changes(ctx, f.ID, state, time.Time{})
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	if !cs.Empty() {
		t.Fatalf("unchanged folder reported %+v", cs)
	}
	wantScan := backend.ScanFull
	if s.h.CondStore {
		wantScan = backend.ScanSkipped
	}
	if cs.Scan != wantScan {
		t.Fatalf("unchanged folder: scan %v, want %v", cs.Scan, wantScan)
	}
	state = cs.State

	// Elsewhere: a new message, a flag change, an expunge.
	u4 := out.Append("Sync", message(4), []string{backend.FlagFlagged}, now)
	out.SetFlags("Sync", u1, []string{backend.FlagSeen, "$label1"})
	out.Expunge("Sync", u2)
	cs, err = sess.Changes(ctx, f.ID, state, time.Time{})
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	if got := uids(cs.Added); !slices.Equal(got, []backend.UID{u4}) {
		t.Errorf("added %v, want [%d]", got, u4)
	}
	wantChanged := []backend.FlagChange{{UID: u1, Flags: []string{backend.FlagSeen, "$label1"}}}
	if !slices.EqualFunc(cs.Changed, wantChanged, func(a, b backend.FlagChange) bool { return a.UID == b.UID && slices.Equal(a.Flags, b.Flags) }) {
		t.Errorf("changed %+v, want %+v", cs.Changed, wantChanged)
	}
	if got := uids(cs.Expunged); !slices.Equal(got, []backend.UID{u2}) {
		t.Errorf("expunged %v, want [%d]", got, u2)
	}
	if cs.AgedOut.Len() != 0 {
		t.Errorf("aged out %v", cs.AgedOut)
	}
	if want := map[bool]backend.Scan{true: backend.ScanModSeq, false: backend.ScanFull}[s.h.CondStore]; cs.Scan != want {
		t.Errorf("scan %v, want %v", cs.Scan, want)
	}
	if got, want := cs.State.UIDs.String(), backend.NewUIDSet(u1, u3, u4).String(); got != want {
		t.Errorf("state tracks %s, want %s", got, want)
	}
	recordAdded(t, sess, f.ID, cs)
	state = cs.State

	// Our own flag change, recorded in the state, is not echoed back.
	flags, err := sess.StoreFlags(ctx, f.ID, u3, []string{backend.FlagSeen}, nil)
	if err != nil {
		t.Fatalf("StoreFlags: %v", err)
	}
	state.SetFlags(u3, flags)
	cs, err = sess.Changes(ctx, f.ID, state, time.Time{})
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	if !cs.Empty() {
		t.Fatalf("own change echoed: %+v", cs)
	}
	state = cs.State

	// Untracked (not yet sent) messages come back as Added, even though
	// the folder did not change.
	state.Untrack(backend.NewUIDSet(u3, u4))
	cs, err = sess.Changes(ctx, f.ID, state, time.Time{})
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	if got := uids(cs.Added); !slices.Equal(got, []backend.UID{u3, u4}) || len(cs.Changed) != 0 || cs.Expunged.Len() != 0 {
		t.Fatalf("after Untrack: %+v, want added [%d %d] only", cs, u3, u4)
	}
	if cs.State.Pending.Len() != 0 || !cs.State.UIDs.Contains(u4) || len(cs.State.FlagsOf(u4)) != 0 {
		t.Fatalf("after Untrack: state %+v", cs.State)
	}
	recordAdded(t, sess, f.ID, cs)
	if !slices.Equal(cs.State.FlagsOf(u4), []string{backend.FlagFlagged}) {
		t.Fatalf("after Untrack: flags of %d %q", u4, cs.State.FlagsOf(u4))
	}
	state = cs.State

	// The state survives a new store (it is persisted by the gateway).
	cs, err = s.session(t).Changes(ctx, f.ID, state.Clone(), time.Time{})
	if err != nil || !cs.Empty() {
		t.Fatalf("Changes on a new store: %+v, %v", cs, err)
	}

	// A deleted folder.
	out.DeleteFolder("Sync")
	_, err = sess.Changes(ctx, f.ID, state, time.Time{})
	wantErr(t, "Changes of a deleted folder", err, backend.ErrFolderNotFound)
}

// recordAdded does what a caller of Changes does when it sends the Added
// messages: reads their flags (Summaries) and records them in cs.State.
func recordAdded(t *testing.T, sess backend.Session, id backend.FolderID, cs *backend.ChangeSet) {
	t.Helper()
	sums, err := sess.Summaries(t.Context(), id, cs.Added)
	if err != nil {
		t.Fatalf("Summaries of the added: %v", err)
	}
	for _, sum := range sums {
		cs.State.SetFlags(sum.UID, sum.Flags)
	}
}

func (s *suite) testChangesWindow(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("Window")
	now := time.Now()
	old := out.Append("Window", message(1), nil, now.AddDate(0, 0, -20))
	recent := out.Append("Window", message(2), nil, now.AddDate(0, 0, -2))
	ancient := out.Append("Window", message(3), nil, now.AddDate(0, 0, -60))
	sess := s.session(t)
	f := folderNamed(t, sess, "Window")

	got, err := sess.Search(ctx, f.ID, now.AddDate(0, 0, -30))
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	if !slices.Equal(uids(got), []backend.UID{old, recent}) {
		t.Fatalf("Search since 30 days = %v, want [%d %d]", got, old, recent)
	}
	all, err := sess.Search(ctx, f.ID, time.Time{})
	if err != nil || all.Len() != 3 {
		t.Fatalf("Search without window = %v, %v", all, err)
	}

	cs, err := sess.Changes(ctx, f.ID, nil, now.AddDate(0, 0, -30))
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	if !slices.Equal(uids(cs.Added), []backend.UID{old, recent}) {
		t.Fatalf("Changes with a 30-day window added %v, want [%d %d]", cs.Added, old, recent)
	}
	// The window shrinks to a week: the 20-day-old message ages out.
	cs, err = sess.Changes(ctx, f.ID, cs.State, now.AddDate(0, 0, -7))
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	if !slices.Equal(uids(cs.AgedOut), []backend.UID{old}) || cs.Added.Len() != 0 || cs.Expunged.Len() != 0 {
		t.Fatalf("Changes with a 7-day window: %+v, want %d aged out", cs, old)
	}
	// A message arriving with an old date stays outside.
	out.Append("Window", message(4), nil, now.AddDate(0, 0, -10))
	cs, err = sess.Changes(ctx, f.ID, cs.State, now.AddDate(0, 0, -7))
	if err != nil || !cs.Empty() {
		t.Fatalf("Changes after an old-dated append: %+v, %v", cs, err)
	}
	_ = ancient
}

func (s *suite) testUIDValidity(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("Recreated")
	u := out.Append("Recreated", message(1), nil, time.Now())
	sess := s.session(t)
	f := folderNamed(t, sess, "Recreated")
	cs, err := sess.Changes(ctx, f.ID, nil, time.Time{})
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	if _, err := sess.Summaries(ctx, f.ID, backend.NewUIDSet(u)); err != nil {
		t.Fatalf("Summaries: %v", err)
	}

	out.DeleteFolder("Recreated")
	out.CreateFolder("Recreated")
	out.Append("Recreated", message(2), nil, time.Now())
	if out.UIDValidity("Recreated") == f.UIDValidity {
		t.Fatalf("the server kept UIDVALIDITY %d for a recreated folder", f.UIDValidity)
	}
	_, err = sess.Changes(ctx, f.ID, cs.State, time.Time{})
	wantErr(t, "Changes after the folder was recreated", err, backend.ErrUIDValidityChanged)
	_, err = sess.Summaries(ctx, f.ID, backend.NewUIDSet(u))
	wantErr(t, "Summaries after the folder was recreated", err, backend.ErrUIDValidityChanged)
	_, err = sess.StoreFlags(ctx, f.ID, u, []string{backend.FlagSeen}, nil)
	wantErr(t, "StoreFlags after the folder was recreated", err, backend.ErrUIDValidityChanged)
	if got := out.Messages("Recreated")[u]; len(got) != 0 {
		t.Fatalf("StoreFlags with a stale ID touched UID %d of the new folder: %q", u, got)
	}
	nf := folderNamed(t, sess, "Recreated")
	if nf.ID == f.ID || nf.UIDValidity != out.UIDValidity("Recreated") {
		t.Fatalf("recreated folder listed as %+v (old ID %q)", nf, f.ID)
	}
}

// testRecheck: Recheck leaves out UIDs never used and messages expunged
// from outside after the session last read the folder, and returns the
// flags changed since a snapshot's mod-sequence (with CONDSTORE; all
// flags without).
func (s *suite) testRecheck(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("Recheck")
	date := time.Date(2026, 11, 2, 10, 30, 0, 0, time.UTC)
	u1 := out.Append("Recheck", message(1), []string{backend.FlagSeen}, date)
	u2 := out.Append("Recheck", message(2), nil, date)
	u3 := out.Append("Recheck", message(3), nil, date)
	sess := s.session(t)
	f := folderNamed(t, sess, "Recheck")
	asked := backend.NewUIDSet(u1, u2, u3, u3+100)
	live, flags, err := sess.Recheck(ctx, f.ID, asked, 0)
	if err != nil || !slices.Equal(uids(live), []backend.UID{u1, u2, u3}) {
		t.Fatalf("Recheck = %v, %v; want [%d %d %d]", live, err, u1, u2, u3)
	}
	want := []backend.FlagChange{{UID: u1, Flags: []string{backend.FlagSeen}}, {UID: u2, Flags: []string{}}, {UID: u3, Flags: []string{}}}
	if !flagChangesEqual(flags, want) {
		t.Errorf("flags since 0: %v, want %v", flags, want)
	}
	cs, err := sess.Changes(ctx, f.ID, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	out.Expunge("Recheck", u2)
	out.SetFlags("Recheck", u3, []string{backend.FlagFlagged})
	live, flags, err = sess.Recheck(ctx, f.ID, asked, cs.State.HighestModSeq)
	if err != nil || !slices.Equal(uids(live), []backend.UID{u1, u3}) {
		t.Fatalf("after an expunge elsewhere: Recheck = %v, %v; want [%d %d]", live, err, u1, u3)
	}
	want = []backend.FlagChange{{UID: u3, Flags: []string{backend.FlagFlagged}}}
	if !s.h.CondStore {
		want = []backend.FlagChange{{UID: u1, Flags: []string{backend.FlagSeen}}, want[0]}
	}
	if !flagChangesEqual(flags, want) {
		t.Errorf("flags since the snapshot: %v, want %v", flags, want)
	}
	u4 := out.Append("Recheck", message(4), nil, date)
	live, _, err = sess.Recheck(ctx, f.ID, backend.NewUIDSet(u4), cs.State.HighestModSeq)
	if err != nil || !slices.Equal(uids(live), []backend.UID{u4}) {
		t.Fatalf("after an append elsewhere: Recheck = %v, %v; want [%d]", live, err, u4)
	}
	_, _, err = sess.Recheck(ctx, "1.NoSuchFolder", asked, 0)
	wantErr(t, "Recheck in a missing folder", err, backend.ErrFolderNotFound)
}

// flagChangesEqual compares flag changes in UID order.
func flagChangesEqual(got, want []backend.FlagChange) bool {
	got = slices.Clone(got)
	slices.SortFunc(got, func(a, b backend.FlagChange) int { return int(a.UID) - int(b.UID) })
	return slices.EqualFunc(got, want, func(a, b backend.FlagChange) bool {
		return a.UID == b.UID && slices.Equal(a.Flags, b.Flags)
	})
}

func (s *suite) testSummaries(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("Summaries")
	date := time.Date(2026, 11, 2, 10, 30, 0, 0, time.UTC)
	u1 := out.Append("Summaries", message(1), []string{backend.FlagSeen, "$label1"}, date)
	u2 := out.Append("Summaries", multipartMessage, nil, date)
	sess := s.session(t)
	f := folderNamed(t, sess, "Summaries")

	sums, err := sess.Summaries(ctx, f.ID, backend.NewUIDSet(u2, u1, 999))
	if err != nil {
		t.Fatalf("Summaries: %v", err)
	}
	if len(sums) != 2 || sums[0].UID != u1 || sums[1].UID != u2 {
		t.Fatalf("Summaries returned %d: %+v", len(sums), sums)
	}
	a := sums[0]
	if !slices.Equal(a.Flags, []string{backend.FlagSeen, "$label1"}) {
		t.Errorf("flags %q", a.Flags)
	}
	if !a.Received.Equal(date) {
		t.Errorf("received %v, want %v", a.Received, date)
	}
	if a.Size != int64(len(message(1))) {
		t.Errorf("size %d, want %d", a.Size, len(message(1)))
	}
	e := a.Envelope
	if e.Subject != "Message 1" || e.MessageID != "m1@example.org" || len(e.From) != 1 || e.From[0].Name != "Alice Example" ||
		e.From[0].Addr() != "alice@example.org" || len(e.To) != 2 || e.To[1].Addr() != "carol@example.net" ||
		!e.Date.Equal(time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)) {
		t.Errorf("envelope %+v", e)
	}
	if st := a.Structure; st == nil || st.Type != "text" || st.Subtype != "plain" || st.Params["charset"] != "utf-8" || st.Path != "1" {
		t.Errorf("structure %+v", a.Structure)
	}

	st := sums[1].Structure
	if st == nil || st.Type != "multipart" || st.Subtype != "mixed" || len(st.Children) != 2 {
		t.Fatalf("multipart structure %+v", st)
	}
	text, att := st.Children[0], st.Children[1]
	if text.Path != "1" || text.Type != "text" || text.Subtype != "plain" {
		t.Errorf("part 1 %+v", text)
	}
	if att.Path != "2" || att.Type != "application" || att.Subtype != "pdf" || att.Encoding != "base64" ||
		att.Disposition != "attachment" || att.Filename() != "report.pdf" || att.Size != int64(len(attachmentBody)) {
		t.Errorf("part 2 %+v", att)
	}

	_, err = sess.Summaries(ctx, "1.NoSuchFolder", backend.NewUIDSet(1))
	wantErr(t, "Summaries of a missing folder", err, backend.ErrFolderNotFound)
}

func (s *suite) testSection(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("Sections")
	u := out.Append("Sections", multipartMessage, nil, time.Now())
	sess := s.session(t)
	f := folderNamed(t, sess, "Sections")
	whole := multipartMessage
	hdrEnd := bytes.Index(whole, []byte("\r\n\r\n")) + 4

	tests := []struct {
		part          string
		offset, limit int64
		want          string
	}{
		{"", 0, 0, string(whole)},
		{"", 0, 10, string(whole[:10])},
		{"", 5, 10, string(whole[5:15])},
		{"HEADER", 0, 0, string(whole[:hdrEnd])},
		{"2", 0, 0, attachmentBody},
		{"2", 0, 8, attachmentBody[:8]},
		{"2", 8, 8, attachmentBody[8:16]},
		{"1", 0, 0, "See the attached report."},
		{"2.MIME", 0, 0, "Content-Type: application/pdf; name=\"report.pdf\"\r\nContent-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"},
	}
	for _, tt := range tests {
		got, err := sess.Section(ctx, f.ID, u, tt.part, tt.offset, tt.limit)
		if err != nil {
			t.Errorf("Section(%q, %d, %d): %v", tt.part, tt.offset, tt.limit, err)
			continue
		}
		if string(got) != tt.want {
			t.Errorf("Section(%q, %d, %d) = %q, want %q", tt.part, tt.offset, tt.limit, got, tt.want)
		}
	}
	if flags := out.Messages("Sections")[u]; backend.HasFlag(flags, backend.FlagSeen) {
		t.Errorf("Section set \\Seen: %q", flags)
	}
	_, err := sess.Section(ctx, f.ID, u+100, "1", 0, 0)
	wantErr(t, "Section of a missing message", err, backend.ErrMessageNotFound)
	for _, bad := range []string{"x", "1.x", "0", "MIME", "1..2", "TEXT.1"} {
		_, err := sess.Section(ctx, f.ID, u, bad, 0, 0)
		wantErr(t, fmt.Sprintf("Section(%q)", bad), err, backend.ErrInvalidSection)
	}
}

func (s *suite) testMessage(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("Stream")
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10/16) // 64 KiB body
	msg := append(append([]byte(nil), message(1)[:bytes.Index(message(1), []byte("\r\n\r\n"))+4]...), big...)
	u := out.Append("Stream", msg, nil, time.Now())
	// A message of 3 MB, beyond what Close drains, in 8-bit text.
	large := append(append([]byte(nil), message(2)[:bytes.Index(message(2), []byte("\r\n\r\n"))+4]...),
		bytes.Repeat([]byte("Grüße aus Köln, 0123456789 abcdefghijklmnopqrstuvwxyz\r\n"), 3<<20/56)...)
	uLarge := out.Append("Stream", large, nil, time.Now())
	sess := s.session(t)
	f := folderNamed(t, sess, "Stream")

	for _, m := range []struct {
		uid  backend.UID
		want []byte
	}{{u, msg}, {uLarge, large}} {
		// What the server holds is what Message must yield, with Size
		// and Total its exact length.
		want := out.Body("Stream", m.uid)
		if !bytes.Equal(want, m.want) {
			t.Fatalf("UID %d: the server holds %d bytes, %d were appended", m.uid, len(want), len(m.want))
		}
		r, err := sess.Message(ctx, f.ID, m.uid)
		if err != nil {
			t.Fatalf("Message: %v", err)
		}
		if r.Size() != int64(len(want)) || r.Total() != int64(len(want)) {
			t.Errorf("UID %d: Size %d Total %d, want %d", m.uid, r.Size(), r.Total(), len(want))
		}
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("reading the message: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Message returned %d bytes, want the %d appended", len(got), len(want))
		}
		if _, err := r.Read(make([]byte, 10)); err == nil {
			t.Error("Read after Close succeeded")
		}
		if err := r.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	}
	// Closing early (before reading, after a little, half way through a
	// message larger than what Close drains) gives the connection back
	// in a usable state, or drops it: the session goes on either way.
	for _, c := range []struct {
		uid backend.UID
		n   int
	}{{u, 0}, {u, 100}, {uLarge, 0}, {uLarge, 1 << 20}} {
		r, err := sess.Message(ctx, f.ID, c.uid)
		if err != nil {
			t.Fatalf("Message: %v", err)
		}
		if _, err := io.ReadFull(r, make([]byte, c.n)); err != nil {
			t.Fatalf("reading: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Close after reading %d bytes of UID %d: %v", c.n, c.uid, err)
		}
		if _, err := sess.Folders(ctx); err != nil {
			t.Fatalf("Folders after an early Close: %v", err)
		}
		got, err := sess.Section(ctx, f.ID, u, "", 0, 0)
		if err != nil || !bytes.Equal(got, msg) {
			t.Fatalf("Section after an early Close: %d bytes, %v", len(got), err)
		}
	}
	for _, uid := range []backend.UID{u, uLarge} {
		if flags := out.Messages("Stream")[uid]; backend.HasFlag(flags, backend.FlagSeen) {
			t.Errorf("Message set \\Seen: %q", flags)
		}
	}
	_, err := sess.Message(ctx, f.ID, uLarge+1)
	wantErr(t, "Message of a missing UID", err, backend.ErrMessageNotFound)
	_, err = sess.Message(ctx, f.ID, 0)
	wantErr(t, "Message of UID 0", err, backend.ErrMessageNotFound)
	// A message expunged by someone else.
	gone := out.Append("Stream", msg, nil, time.Now())
	out.Expunge("Stream", gone)
	_, err = sess.Message(ctx, f.ID, gone)
	wantErr(t, "Message of an expunged message", err, backend.ErrMessageNotFound)
	// A folder deleted by someone else.
	out.CreateFolder("StreamGone")
	gf := folderNamed(t, sess, "StreamGone")
	out.DeleteFolder("StreamGone")
	_, err = sess.Message(ctx, gf.ID, 1)
	wantErr(t, "Message in a deleted folder", err, backend.ErrFolderNotFound)
}

func (s *suite) testStoreFlags(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("Flags")
	u := out.Append("Flags", message(1), nil, time.Now())
	other := out.Append("Flags", message(2), nil, time.Now())
	sess := s.session(t)
	f := folderNamed(t, sess, "Flags")

	steps := []struct {
		add, remove []string
		want        []string
	}{
		{[]string{`\seen`, backend.FlagFlagged}, nil, []string{backend.FlagFlagged, backend.FlagSeen}},
		{nil, []string{backend.FlagFlagged}, []string{backend.FlagSeen}},
		{[]string{"$label1", backend.FlagForwarded}, nil, []string{backend.FlagSeen, backend.FlagForwarded, "$label1"}},
		{[]string{backend.FlagAnswered}, []string{backend.FlagSeen, "$label1"}, []string{backend.FlagAnswered, backend.FlagForwarded}},
		{nil, nil, []string{backend.FlagAnswered, backend.FlagForwarded}},
	}
	for i, st := range steps {
		got, err := sess.StoreFlags(ctx, f.ID, u, st.add, st.remove)
		if err != nil {
			t.Fatalf("step %d: StoreFlags: %v", i, err)
		}
		if !slices.Equal(got, st.want) {
			t.Errorf("step %d: StoreFlags returned %q, want %q", i, got, st.want)
		}
		if server := out.Messages("Flags")[u]; !slices.Equal(server, st.want) {
			t.Errorf("step %d: server has %q, want %q", i, server, st.want)
		}
	}
	if server := out.Messages("Flags")[other]; len(server) != 0 {
		t.Errorf("another message got flags %q", server)
	}
	_, err := sess.StoreFlags(ctx, f.ID, other+100, []string{backend.FlagSeen}, nil)
	wantErr(t, "StoreFlags of a missing UID", err, backend.ErrMessageNotFound)
	_, err = sess.StoreFlags(ctx, f.ID, 0, []string{backend.FlagSeen}, nil)
	wantErr(t, "StoreFlags of UID 0", err, backend.ErrMessageNotFound)
	_, err = sess.Section(ctx, f.ID, 0, "", 0, 0)
	wantErr(t, "Section of UID 0", err, backend.ErrMessageNotFound)
	_, err = sess.Move(ctx, f.ID, 0, folderNamed(t, sess, "Trash").ID)
	wantErr(t, "Move of UID 0", err, backend.ErrMessageNotFound)
}

func (s *suite) testMove(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("MoveFrom")
	out.CreateFolder("MoveTo")
	out.Append("MoveTo", message(9), nil, time.Now()) // so UIDs differ between the folders
	u := out.Append("MoveFrom", message(1), []string{backend.FlagSeen}, time.Now())
	sess := s.session(t)
	src, dst := folderNamed(t, sess, "MoveFrom"), folderNamed(t, sess, "MoveTo")

	newUID, err := sess.Move(ctx, src.ID, u, dst.ID)
	if err != nil {
		t.Fatalf("Move: %v", err)
	}
	if _, still := out.Messages("MoveFrom")[u]; still {
		t.Fatalf("UID %d still in the source", u)
	}
	flags, there := out.Messages("MoveTo")[newUID]
	if !there {
		t.Fatalf("Move returned UID %d, destination has %v", newUID, out.Messages("MoveTo"))
	}
	if !bytes.Equal(out.Body("MoveTo", newUID), message(1)) || !slices.Equal(flags, []string{backend.FlagSeen}) {
		t.Fatalf("destination UID %d holds another message or flags %q", newUID, flags)
	}
	_, err = sess.Move(ctx, src.ID, u, dst.ID)
	wantErr(t, "Move of a message already moved", err, backend.ErrMessageNotFound)
	_, err = sess.Move(ctx, dst.ID, newUID, "1.NoSuchFolder")
	wantErr(t, "Move to a missing folder", err, backend.ErrDestNotFound)
	_, err = sess.Move(ctx, dst.ID, newUID, dst.ID)
	wantErr(t, "Move to the same folder", err, backend.ErrSameFolder)
	_, err = sess.Move(ctx, "1.NoSuchFolder", 1, dst.ID)
	wantErr(t, "Move from a missing folder", err, backend.ErrFolderNotFound)
	if _, there := out.Messages("MoveTo")[newUID]; !there {
		t.Fatalf("failed moves lost UID %d", newUID)
	}
}

func (s *suite) testDelete(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("Deleting")
	u1 := out.Append("Deleting", message(1), nil, time.Now())
	u2 := out.Append("Deleting", message(2), nil, time.Now())
	marked := out.Append("Deleting", message(3), []string{backend.FlagDeleted}, time.Now())
	sess := s.session(t)
	f := folderNamed(t, sess, "Deleting")
	trash := folderNamed(t, sess, "Trash")

	del, err := sess.Delete(ctx, f.ID, u1, true)
	if err != nil {
		t.Fatalf("Delete to Trash: %v", err)
	}
	if del.Trash != trash.ID || del.UID == 0 {
		t.Fatalf("Delete to Trash = %+v, want Trash %q", del, trash.ID)
	}
	if _, still := out.Messages("Deleting")[u1]; still {
		t.Fatalf("UID %d still in the folder", u1)
	}
	if !bytes.Equal(out.Body("Trash", del.UID), message(1)) {
		t.Fatalf("Trash UID %d does not hold the message", del.UID)
	}

	del2, err := sess.Delete(ctx, f.ID, u2, false)
	if err != nil {
		t.Fatalf("Delete for good: %v", err)
	}
	if del2 != (backend.Deleted{}) {
		t.Fatalf("Delete for good = %+v, want the zero value", del2)
	}
	msgs := out.Messages("Deleting")
	if _, still := msgs[u2]; still {
		t.Fatalf("UID %d still in the folder", u2)
	}
	if _, kept := msgs[marked]; !kept {
		t.Fatalf("Delete expunged another \\Deleted message (UID %d)", marked)
	}

	// In Trash itself, deleting to Trash deletes for good.
	del3, err := sess.Delete(ctx, trash.ID, del.UID, true)
	if err != nil {
		t.Fatalf("Delete in Trash: %v", err)
	}
	if del3 != (backend.Deleted{}) {
		t.Fatalf("Delete in Trash = %+v, want the zero value", del3)
	}
	if _, still := out.Messages("Trash")[del.UID]; still {
		t.Fatalf("UID %d still in Trash", del.UID)
	}
	_, err = sess.Delete(ctx, f.ID, u2, false)
	wantErr(t, "Delete of a missing UID", err, backend.ErrMessageNotFound)
	_, err = sess.Delete(ctx, f.ID, u2, true)
	wantErr(t, "Delete to Trash of a missing UID", err, backend.ErrMessageNotFound)
}

func (s *suite) testAppend(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	sess := s.session(t)
	sent := folderNamed(t, sess, "Sent")
	date := time.Date(2026, 11, 27, 8, 15, 0, 0, time.UTC)
	msg := message(7)
	u, err := sess.Append(ctx, sent.ID, backend.AppendMessage{Flags: []string{backend.FlagSeen}, Date: date, Size: int64(len(msg)), Body: bytes.NewReader(msg)})
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	flags, there := out.Messages("Sent")[u]
	if !there || !slices.Equal(flags, []string{backend.FlagSeen}) || !bytes.Equal(out.Body("Sent", u), msg) {
		t.Fatalf("Append returned UID %d; server has flags %q, present %v", u, flags, there)
	}
	sums, err := sess.Summaries(ctx, sent.ID, backend.NewUIDSet(u))
	if err != nil || len(sums) != 1 || !sums[0].Received.Equal(date) {
		t.Fatalf("appended message summary %+v, %v; want arrival %v", sums, err, date)
	}
	_, err = sess.Append(ctx, "1.NoSuchFolder", backend.AppendMessage{Size: int64(len(msg)), Body: bytes.NewReader(msg)})
	wantErr(t, "Append to a missing folder", err, backend.ErrFolderNotFound)
	if _, err := sess.Append(ctx, sent.ID, backend.AppendMessage{Size: int64(len(msg)) + 5, Body: bytes.NewReader(msg)}); err == nil {
		t.Fatalf("Append of a body shorter than Size succeeded")
	}
}

// testConcurrent runs many operations at once on one session; every one
// must see the same, right answer.
func (s *suite) testConcurrent(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("Busy")
	var want []backend.UID
	for i := range 5 {
		want = append(want, out.Append("Busy", message(i), nil, time.Now()))
	}
	sess := s.session(t)
	f := folderNamed(t, sess, "Busy")
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			switch i % 3 {
			case 0:
				cs, err := sess.Changes(ctx, f.ID, nil, time.Time{})
				if err != nil {
					errs <- err
				} else if !slices.Equal(uids(cs.Added), want) {
					errs <- fmt.Errorf("Changes added %v, want %v", cs.Added, want)
				}
			case 1:
				sums, err := sess.Summaries(ctx, f.ID, backend.NewUIDSet(want...))
				if err != nil {
					errs <- err
				} else if len(sums) != len(want) {
					errs <- fmt.Errorf("Summaries returned %d", len(sums))
				}
			case 2:
				body, err := sess.Section(ctx, f.ID, want[i%5], "TEXT", 0, 0)
				if err != nil {
					errs <- err
				} else if !strings.Contains(string(body), fmt.Sprintf("Hello number %d.", i%5)) {
					errs <- fmt.Errorf("Section TEXT of UID %d = %q", want[i%5], body)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func (s *suite) testEmptyFolder(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("Bin")
	out.CreateFolder("Bin/Old")
	for i := range 3 {
		out.Append("Bin", message(i), nil, time.Now())
	}
	kept := out.Append("Bin/Old", message(9), nil, time.Now())
	sess := s.session(t)
	f := folderNamed(t, sess, "Bin")

	if err := sess.EmptyFolder(ctx, f.ID, false); err != nil {
		t.Fatalf("EmptyFolder: %v", err)
	}
	if msgs := out.Messages("Bin"); len(msgs) != 0 {
		t.Fatalf("Bin still holds %v", msgs)
	}
	if _, ok := out.Messages("Bin/Old")[kept]; !ok {
		t.Fatalf("EmptyFolder without subfolders emptied Bin/Old")
	}
	if err := sess.EmptyFolder(ctx, f.ID, true); err != nil {
		t.Fatalf("EmptyFolder of an empty folder with subfolders: %v", err)
	}
	if slices.Contains(out.Folders(), "Bin/Old") || !slices.Contains(out.Folders(), "Bin") {
		t.Fatalf("folders after EmptyFolder with subfolders: %q", out.Folders())
	}
	wantErr(t, "EmptyFolder of a missing folder", sess.EmptyFolder(ctx, "1.NoSuchFolder", false), backend.ErrFolderNotFound)
}
