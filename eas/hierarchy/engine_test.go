package hierarchy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/devices/boltstore"
)

const (
	user   = "jane@example.com"
	device = "androidc123"
)

func newEngine(t testing.TB) *Engine {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "devices.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &Engine{Store: st, FirstKey: func() uint64 { return 100 }}
}

// show renders changes one per line: "A sid parent name type",
// "U sid parent name type", "D sid".
func show(c *Changes) string {
	var lines []string
	for _, f := range c.Update {
		lines = append(lines, fmt.Sprintf("U %s %s %s %d", f.ServerID, f.ParentID, f.DisplayName, f.Type))
	}
	for _, sid := range c.Delete {
		lines = append(lines, "D "+sid)
	}
	for _, f := range c.Add {
		lines = append(lines, fmt.Sprintf("A %s %s %s %d", f.ServerID, f.ParentID, f.DisplayName, f.Type))
	}
	return strings.Join(lines, "\n")
}

func lines(s ...string) string { return strings.Join(s, "\n") }

// folderSync runs FolderSync and fails the test unless it succeeds.
func folderSync(t *testing.T, e *Engine, m backend.Session, key uint64) Result {
	t.Helper()
	r, err := e.FolderSync(context.Background(), m, user, device, key)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusOK {
		t.Fatalf("FolderSync %d: status %d (%v)", key, r.Status, r.Cause)
	}
	return r
}

func expect(t *testing.T, what string, got *Changes, want string) {
	t.Helper()
	if s := show(got); s != want {
		t.Errorf("%s:\n%s\nwant:\n%s", what, s, want)
	}
}

func TestFolderSyncChanges(t *testing.T) {
	for _, stable := range []bool{false, true} {
		t.Run(fmt.Sprintf("stableIDs=%v", stable), func(t *testing.T) {
			e := newEngine(t)
			m := newMem("Drafts:drafts", "Sent:sent", "Trash:trash", "Junk:junk", "Work", "Work/2026", "Work/2025", "Old")
			m.stableIDs = stable
			r := folderSync(t, e, m, 0)
			if r.SyncKey != 100 {
				t.Errorf("first key %d, want 100", r.SyncKey)
			}
			expect(t, "initial", r.Changes, lines(
				"A 1 0 INBOX 2", "A 2 0 Drafts 3", "A 3 0 Junk 12", "A 4 0 Old 12",
				"A 5 0 Sent 5", "A 6 0 Trash 4", "A 7 0 Work 12", "A 8 7 2025 12", "A 9 7 2026 12"))

			// Nothing changed: same key, no write.
			r2 := folderSync(t, e, m, 100)
			if r2.SyncKey != 100 || r2.Changes.Count() != 0 {
				t.Errorf("unchanged: key %d, %d changes; want 100, 0", r2.SyncKey, r2.Changes.Count())
			}

			// Rename a parent (children's IDs change with it), move a
			// folder, delete one, add one: Updates, not Delete+Add.
			m.renameAll("Work", "Job")
			m.renameAll("Old", "Job/Old")
			m.remove("Junk")
			m.add("New", backend.RoleNone)
			r3 := folderSync(t, e, m, 100)
			if r3.SyncKey != 101 {
				t.Errorf("key %d, want 101", r3.SyncKey)
			}
			expect(t, "after rename, move, delete, add", r3.Changes, lines(
				"U 7 0 Job 12", "U 4 7 Old 12", "D 3", "A 10 0 New 12"))

			// The Sync states of the deleted folder are gone, others stay.
			st := e.Store
			ctx := context.Background()
			for _, sid := range []string{"4", "8"} {
				if err := st.PutSyncState(ctx, user, device, sid, nil, &devices.SyncState{Key: 5, Data: []byte("x")}); err != nil {
					t.Fatal(err)
				}
			}
			m.remove("Job/Old")
			folderSync(t, e, m, 101)
			colls, err := st.SyncCollections(ctx, user, device)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(colls, []string{"", "8"}) {
				t.Errorf("collections with state %q, want the hierarchy and 8", colls)
			}
		})
	}
}

func TestFolderSyncKeyZeroKeepsState(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	m := newMem("Sent:sent", "Work", "Gone")
	first := folderSync(t, e, m, 0)
	expect(t, "initial", first.Changes, lines("A 1 0 INBOX 2", "A 2 0 Gone 12", "A 3 0 Sent 5", "A 4 0 Work 12"))
	for _, sid := range []string{"1", "2", "4"} {
		if err := e.Store.PutSyncState(ctx, user, device, sid, nil, &devices.SyncState{Key: 7, Data: []byte("items of " + sid)}); err != nil {
			t.Fatal(err)
		}
	}
	m.remove("Gone")
	m.add("Fresh", backend.RoleNone)
	// Gmail's pull-to-refresh: SyncKey 0 again.
	r := folderSync(t, e, m, 0)
	expect(t, "SyncKey 0 again", r.Changes, lines("A 1 0 INBOX 2", "A 5 0 Fresh 12", "A 3 0 Sent 5", "A 4 0 Work 12"))
	if r.SyncKey != first.SyncKey+1 {
		t.Errorf("key %d, want %d", r.SyncKey, first.SyncKey+1)
	}
	for _, sid := range []string{"1", "4"} {
		st, err := e.Store.GetSyncState(ctx, user, device, sid, 7)
		if err != nil || string(st.Data) != "items of "+sid {
			t.Errorf("Sync state of %s after FolderSync 0: %v, %v", sid, st, err)
		}
	}
	if _, err := e.Store.GetSyncState(ctx, user, device, "2", 7); !errors.Is(err, devices.ErrNotFound) {
		t.Errorf("Sync state of the deleted folder: %v, want ErrNotFound", err)
	}
	// And the chain goes on from the new key.
	if r2 := folderSync(t, e, m, r.SyncKey); r2.Changes.Count() != 0 {
		t.Errorf("after SyncKey 0: %s", show(r2.Changes))
	}
}

func TestFolderSyncRetryAndStaleKeys(t *testing.T) {
	e := newEngine(t)
	m := newMem("A")
	folderSync(t, e, m, 0) // key 100
	m.add("B", backend.RoleNone)
	r1 := folderSync(t, e, m, 100) // 101, answer lost
	expect(t, "101", r1.Changes, "A 3 0 B 12")

	// Meanwhile another folder appears; the retry of 100 gets the same
	// answer as before, with the same key.
	m.add("C", backend.RoleNone)
	r2 := folderSync(t, e, m, 100)
	if !r2.Replayed || r2.SyncKey != 101 || show(r2.Changes) != "A 3 0 B 12" {
		t.Errorf("retry of 100: replayed %v key %d %q; want the 101 answer again", r2.Replayed, r2.SyncKey, show(r2.Changes))
	}
	r3 := folderSync(t, e, m, 101)
	expect(t, "102", r3.Changes, "A 4 0 C 12")

	// 100 is now two keys old; 999 was never issued; both are Status 9.
	for _, key := range []uint64{100, 999} {
		r, err := e.FolderSync(context.Background(), m, user, device, key)
		if err != nil || r.Status != StatusInvalidKey {
			t.Errorf("key %d: status %d, err %v; want 9", key, r.Status, err)
		}
	}
	// A device without any hierarchy and a non-zero key: 9.
	r, err := e.FolderSync(context.Background(), m, user, "otherdevice", 5)
	if err != nil || r.Status != StatusInvalidKey {
		t.Errorf("unknown device: status %d, err %v; want 9", r.Status, err)
	}
}

func TestFolderSyncNoServerIDReuse(t *testing.T) {
	e := newEngine(t)
	m := newMem("A")
	folderSync(t, e, m, 0) // 1 INBOX, 2 A; key 100
	m.add("B", backend.RoleNone)
	folderSync(t, e, m, 100) // B gets 3 in key 101, whose answer is lost
	m.remove("B")
	m.add("C", backend.RoleNone)
	m.add("D", backend.RoleNone)
	// The device retries 100 but B is gone: no replay of another request
	// kind, yet C must not get 3, which the lost answer gave B.
	r, err := e.Update(context.Background(), m, user, device, 100, "2", RootID, "A2")
	if err != nil || r.Status != StatusOK {
		t.Fatalf("Update: %d %v %v", r.Status, r.Cause, err)
	}
	r2 := folderSync(t, e, m, r.SyncKey)
	expect(t, "after retry from 100", r2.Changes, lines("A 4 0 C 12", "A 5 0 D 12"))
}

func TestFolderSyncBackendErrors(t *testing.T) {
	e := newEngine(t)
	m := newMem()
	m.failList = fmt.Errorf("LIST: %w", backend.ErrUnavailable)
	if _, err := e.FolderSync(context.Background(), m, user, device, 0); !errors.Is(err, backend.ErrUnavailable) {
		t.Errorf("unavailable: err %v", err)
	}
	m.failList = errors.New("LIST: BAD weird")
	r, err := e.FolderSync(context.Background(), m, user, device, 0)
	if err != nil || r.Status != StatusServerError {
		t.Errorf("server error: status %d err %v; want 6", r.Status, err)
	}
}

func TestRoles(t *testing.T) {
	for _, tc := range []struct {
		name      string
		folders   []string
		overrides map[string]backend.Role
		want      string
	}{
		{"special-use", []string{"Drafts:drafts", "Sent:sent", "Trash:trash", "Spam:junk"},
			nil, lines("A 1 0 INBOX 2", "A 2 0 Drafts 3", "A 3 0 Sent 5", "A 4 0 Spam 12", "A 5 0 Trash 4")},
		{"duplicates: first wins", []string{"Bin:trash", "Trash:trash", "Sent:sent", "Sent2:sent"},
			nil, lines("A 1 0 INBOX 2", "A 2 0 Bin 4", "A 3 0 Sent 5", "A 4 0 Sent2 12", "A 5 0 Trash 12")},
		{"overrides without special-use", []string{"Sent Items", "Deleted Items", "Entw\u00fcrfe"},
			map[string]backend.Role{"Sent Items": backend.RoleSent, "deleted items": backend.RoleTrash, "Entw\u00fcrfe": backend.RoleDrafts},
			lines("A 1 0 INBOX 2", "A 2 0 Deleted Items 4", "A 3 0 Entw\u00fcrfe 3", "A 4 0 Sent Items 5")},
		{"override beats special-use", []string{"Sent:sent", "Gesendet"},
			map[string]backend.Role{"Gesendet": backend.RoleSent},
			lines("A 1 0 INBOX 2", "A 2 0 Gesendet 5", "A 3 0 Sent 12")},
		{"override takes a role away; INBOX stays", []string{"Trash:trash"},
			map[string]backend.Role{"Trash": backend.RoleNone, "INBOX": backend.RoleSent},
			lines("A 1 0 INBOX 2", "A 2 0 Trash 12")},
		{"noselect holds no role", []string{"Drafts:noselect"},
			map[string]backend.Role{"Drafts": backend.RoleDrafts},
			lines("A 1 0 INBOX 2", "A 2 0 Drafts 12")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t)
			e.Options.RoleOverrides = tc.overrides
			r := folderSync(t, e, newMem(tc.folders...), 0)
			expect(t, "roles", r.Changes, tc.want)
		})
	}
}

func TestRoleStaysWithItsHolder(t *testing.T) {
	e := newEngine(t)
	m := newMem("Trash:trash")
	folderSync(t, e, m, 0)
	// A second folder claims \Trash and sorts first: the old holder keeps
	// the role, so the device's Deleted Items do not jump.
	m.add("Bin", backend.RoleTrash)
	r := folderSync(t, e, m, 100)
	expect(t, "second trash", r.Changes, "A 3 0 Bin 12")
	h, err := Load(context.Background(), e.Store, user, device)
	if err != nil {
		t.Fatal(err)
	}
	if f, ok := h.ByRole(backend.RoleTrash); !ok || f.Name != "Trash" {
		t.Errorf("trash is %+v", f)
	}
}

func TestLoadLookups(t *testing.T) {
	e := newEngine(t)
	if _, err := Load(context.Background(), e.Store, user, device); !errors.Is(err, devices.ErrNotFound) {
		t.Fatalf("Load before FolderSync: %v", err)
	}
	m := newMem("Sent:sent", "Work", "Work/X")
	folderSync(t, e, m, 0)
	h, err := Load(context.Background(), e.Store, user, device)
	if err != nil {
		t.Fatal(err)
	}
	if h.SyncKey() != 100 || len(h.Folders()) != 4 {
		t.Errorf("key %d, %d folders", h.SyncKey(), len(h.Folders()))
	}
	x := m.folder("Work/X")
	f, ok := h.Folder("4")
	if !ok || f.ID != x.ID || f.Name != "Work/X" || f.ParentID != "3" || f.Role != backend.RoleNone || f.UIDValidity != x.UIDValidity {
		t.Errorf("Folder(4) = %+v, %v", f, ok)
	}
	if sid, ok := h.ServerID(x.ID); !ok || sid != "4" {
		t.Errorf("ServerID = %q, %v", sid, ok)
	}
	if f, ok := h.ByRole(backend.RoleSent); !ok || f.ServerID != "2" || f.Type != TypeSent {
		t.Errorf("ByRole(Sent) = %+v", f)
	}
	if _, ok := h.Folder("0"); ok {
		t.Error("Folder(0) found")
	}
	if _, ok := h.ByRole(backend.RoleDrafts); ok {
		t.Error("a Drafts folder that does not exist was found")
	}
}

// TestFolderSyncConcurrent runs the same FolderSync from many goroutines:
// whatever the interleaving, they all get one answer and one new key.
func TestFolderSyncConcurrent(t *testing.T) {
	e := newEngine(t)
	m := newMem("A")
	folderSync(t, e, m, 0)
	m.add("B", backend.RoleNone)
	const n = 8
	results := make(chan Result, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			r, err := e.FolderSync(context.Background(), m, user, device, 100)
			results <- r
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		r := <-results
		if r.Status == StatusServerError {
			continue // lost the race twice: the client retries
		}
		if r.Status != StatusOK || r.SyncKey != 101 || show(r.Changes) != "A 3 0 B 12" {
			t.Errorf("concurrent FolderSync: status %d key %d %q", r.Status, r.SyncKey, show(r.Changes))
		}
	}
}

func TestPending(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	m := newMem("A")
	if _, err := e.Pending(ctx, m, user, device); !errors.Is(err, devices.ErrNotFound) {
		t.Errorf("Pending before FolderSync: %v", err)
	}
	folderSync(t, e, m, 0)
	for _, step := range []struct {
		change func()
		want   bool
	}{
		{func() {}, false},
		{func() { m.add("B", backend.RoleNone) }, true},
		{func() { m.remove("B") }, false},
		{func() { m.renameAll("A", "A2") }, true},
	} {
		step.change()
		got, err := e.Pending(ctx, m, user, device)
		if err != nil || got != step.want {
			t.Errorf("Pending = %v, %v; want %v (folders %q)", got, err, step.want, names(m))
		}
	}
}

// BenchmarkFolderSyncUnchanged is the common FolderSync: 200 folders,
// nothing changed (no write).
func BenchmarkFolderSyncUnchanged(b *testing.B) {
	e := newEngine(b)
	m := newMem("Drafts:drafts", "Sent:sent", "Trash:trash")
	for i := range 200 {
		m.add(fmt.Sprintf("Projects/%03d", i), backend.RoleNone)
	}
	m.add("Projects", backend.RoleNone)
	ctx := context.Background()
	r, err := e.FolderSync(ctx, m, user, device, 0)
	if err != nil || r.Status != StatusOK {
		b.Fatal(r, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		r2, err := e.FolderSync(ctx, m, user, device, r.SyncKey)
		if err != nil || r2.SyncKey != r.SyncKey {
			b.Fatal(r2, err)
		}
	}
}

// BenchmarkFolderSyncZero is Gmail's pull-to-refresh on 200 folders: every
// folder answered again, a new state written.
func BenchmarkFolderSyncZero(b *testing.B) {
	e := newEngine(b)
	m := newMem("Drafts:drafts", "Sent:sent", "Trash:trash")
	for i := range 200 {
		m.add(fmt.Sprintf("F%03d", i), backend.RoleNone)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r, err := e.FolderSync(ctx, m, user, device, 0); err != nil || r.Changes.Count() != 204 {
			b.Fatal(r, err)
		}
	}
}

// TestSharedUIDValidity: on a server that gives every mailbox the same
// UIDVALIDITY a vanished and a new folder are never taken for a rename.
func TestSharedUIDValidity(t *testing.T) {
	e := newEngine(t)
	m := newMem("A", "B")
	for _, f := range m.folders {
		f.uv = 1
	}
	folderSync(t, e, m, 0) // 1 INBOX, 2 A, 3 B
	m.remove("A")
	m.add("C", backend.RoleNone).uv = 1
	r := folderSync(t, e, m, 100)
	expect(t, "delete and create", r.Changes, lines("D 2", "A 4 0 C 12"))
}

// conflictStore refuses the first conflicts writes with devices.ErrConflict,
// as if another request had written the hierarchy just before.
type conflictStore struct {
	devices.Store
	conflicts int
	puts      int
}

func (s *conflictStore) PutSyncState(ctx context.Context, user, device, collection string, base, next *devices.SyncState) error {
	s.puts++
	if s.puts <= s.conflicts {
		return fmt.Errorf("put %d: %w", s.puts, devices.ErrConflict)
	}
	return s.Store.PutSyncState(ctx, user, device, collection, base, next)
}

// TestWriteConflicts runs FolderSync and FolderCreate against a store that
// refuses their first writes: one refusal is retried, two end the command
// with Status 6 and nothing written.
func TestWriteConflicts(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		run     func(e *Engine, m *memSession) (Result, error)
		check   func(r Result) bool // the answer after a retry
		folders int                 // the folders the state holds after a retry
	}{
		{"FolderSync", func(e *Engine, m *memSession) (Result, error) {
			m.add("B", backend.RoleNone)
			return e.FolderSync(ctx, m, user, device, 100)
		}, func(r Result) bool { return show(r.Changes) == "A 3 0 B 12" }, 3},
		{"FolderCreate", func(e *Engine, m *memSession) (Result, error) {
			return e.Create(ctx, m, user, device, 100, RootID, "C", TypeUserMail)
		}, func(r Result) bool { return r.ServerID == "3" }, 3},
	} {
		for _, conflicts := range []int{1, 2} {
			t.Run(fmt.Sprintf("%s/%d conflicts", tc.name, conflicts), func(t *testing.T) {
				e := newEngine(t)
				m := newMem("A")
				folderSync(t, e, m, 0) // 1 INBOX, 2 A; key 100
				st := &conflictStore{Store: e.Store, conflicts: conflicts}
				e.Store = st
				r, err := tc.run(e, m)
				if err != nil {
					t.Fatal(err)
				}
				if st.puts != 2 {
					t.Errorf("%d writes tried, want 2", st.puts)
				}
				h, err := Load(ctx, st.Store, user, device)
				if err != nil {
					t.Fatal(err)
				}
				if conflicts == 2 {
					if r.Status != StatusServerError || !errors.Is(r.Cause, devices.ErrConflict) {
						t.Errorf("status %d (%v), want %d caused by ErrConflict", r.Status, r.Cause, StatusServerError)
					}
					if h.SyncKey() != 100 {
						t.Errorf("stored key %d after giving up, want 100", h.SyncKey())
					}
					return
				}
				if r.Status != StatusOK || r.SyncKey != 101 || !tc.check(r) {
					t.Errorf("after a retry: %+v", r)
				}
				if h.SyncKey() != 101 || len(h.Folders()) != tc.folders {
					t.Errorf("stored key %d with %d folders, want 101 with %d", h.SyncKey(), len(h.Folders()), tc.folders)
				}
			})
		}
	}
}
