package hierarchy

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
)

func names(m *memSession) []string {
	var out []string
	for _, f := range m.list() {
		out = append(out, f.Name)
	}
	return out
}

func TestCreate(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	m := newMem("Sent:sent", "Work")
	folderSync(t, e, m, 0) // 1 INBOX, 2 Sent, 3 Work; key 100

	r, err := e.Create(ctx, m, user, device, 100, "3", "Plans", TypeUserMail)
	if err != nil || r.Status != StatusOK || r.ServerID != "4" || r.SyncKey != 101 {
		t.Fatalf("Create: %+v, %v", r, err)
	}
	if !slices.Contains(names(m), "Work/Plans") {
		t.Errorf("folders on the server: %q", names(m))
	}
	// The lost answer: the same request again gets the same folder.
	r2, err := e.Create(ctx, m, user, device, 100, "3", "Plans", TypeUserMail)
	if err != nil || r2.Status != StatusOK || r2.ServerID != "4" || r2.SyncKey != 101 || !r2.Replayed {
		t.Errorf("repeated Create: %+v, %v", r2, err)
	}
	if n := len(names(m)); n != 4 {
		t.Errorf("%d folders after the repeat, want 4", n)
	}
	// The next FolderSync does not echo the new folder back.
	if r := folderSync(t, e, m, 101); r.Changes.Count() != 0 {
		t.Errorf("FolderSync after Create: %s", show(r.Changes))
	}
	h, _ := Load(ctx, e.Store, user, device)
	if f, _ := h.Folder("4"); f.ID != m.folder("Work/Plans").ID || f.ParentID != "3" || f.Type != TypeUserMail {
		t.Errorf("stored folder %+v", f)
	}

	for _, tc := range []struct {
		name   string
		key    uint64
		parent string
		fname  string
		typ    int
		status int
	}{
		{"exists", 101, "3", "Plans", 12, StatusExists},
		{"INBOX-level exists", 101, "0", "Work", 12, StatusExists},
		{"unknown parent", 101, "77", "X", 12, StatusParentNotFound},
		{"stale key", 100 - 1, "0", "X", 12, StatusInvalidKey},
		{"key 0", 0, "0", "X", 12, StatusInvalidKey},
		{"no name", 101, "0", "", 12, StatusMalformed},
		{"delimiter in name", 101, "0", "a/b", 12, StatusMalformed},
		{"calendar", 101, "0", "Cal", 13, StatusMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := e.Create(ctx, m, user, device, tc.key, tc.parent, tc.fname, tc.typ)
			if err != nil || r.Status != tc.status {
				t.Errorf("status %d (%v), err %v; want %d", r.Status, r.Cause, err, tc.status)
			}
		})
	}
	if n := len(names(m)); n != 4 {
		t.Errorf("%d folders after refused creates, want 4: %q", n, names(m))
	}
	// Generic type 1 is made a mail folder at the top.
	r3, err := e.Create(ctx, m, user, device, 101, "", "Top", TypeUserGeneric)
	if err != nil || r3.Status != StatusOK || r3.ServerID != "5" {
		t.Errorf("Create type 1: %+v %v", r3, err)
	}
}

func TestUpdate(t *testing.T) {
	for _, stable := range []bool{false, true} {
		t.Run(fmt.Sprintf("stableIDs=%v", stable), func(t *testing.T) {
			ctx := context.Background()
			e := newEngine(t)
			m := newMem("Sent:sent", "Work", "Work/A", "Work/A/deep", "Work/Box:noselect", "Work/Box/in", "Home")
			m.stableIDs = stable
			first := folderSync(t, e, m, 0)
			expect(t, "initial", first.Changes, lines("A 1 0 INBOX 2", "A 2 0 Home 12", "A 3 0 Sent 5",
				"A 4 0 Work 12", "A 5 4 A 12", "A 6 5 deep 12", "A 7 4 Box 12", "A 8 7 in 12"))
			key := first.SyncKey

			// Rename and move Work under Home: the whole subtree follows.
			r, err := e.Update(ctx, m, user, device, key, "4", "2", "Job")
			if err != nil || r.Status != StatusOK || r.SyncKey != key+1 {
				t.Fatalf("Update: %+v %v", r, err)
			}
			want := []string{"INBOX", "Home", "Home/Job", "Home/Job/A", "Home/Job/A/deep", "Home/Job/Box", "Home/Job/Box/in", "Sent"}
			if got := names(m); !slices.Equal(got, want) {
				t.Errorf("server folders %q, want %q", got, want)
			}
			// Nothing is echoed, and the lookups know the new IDs.
			if r := folderSync(t, e, m, key+1); r.Changes.Count() != 0 {
				t.Errorf("FolderSync after Update: %s", show(r.Changes))
			}
			h, _ := Load(ctx, e.Store, user, device)
			for sid, name := range map[string]string{"4": "Home/Job", "6": "Home/Job/A/deep", "8": "Home/Job/Box/in", "7": "Home/Job/Box"} {
				f, _ := h.Folder(sid)
				if live := m.folder(name); f.ID != live.ID || f.Name != name {
					t.Errorf("folder %s: %s %s, want %s %s", sid, f.ID, f.Name, live.ID, name)
				}
			}
			// Repeating the Update whose answer was lost.
			r2, err := e.Update(ctx, m, user, device, key, "4", "2", "Job")
			if err != nil || r2.Status != StatusOK || r2.SyncKey != key+1 || !r2.Replayed {
				t.Errorf("repeated Update: %+v %v", r2, err)
			}

			for _, tc := range []struct {
				name, sid, parent, fname string
				status                   int
			}{
				{"special", "3", "0", "Outbox", StatusSpecial},
				{"inbox", "1", "0", "In", StatusSpecial},
				{"unknown", "99", "0", "X", StatusNotFound},
				{"unknown parent", "5", "99", "X", StatusParentNotFound},
				{"below itself", "4", "6", "X", StatusParentNotFound},
				{"exists", "5", "0", "Home", StatusExists},
				{"no name", "5", "0", "", StatusMalformed},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r, err := e.Update(ctx, m, user, device, key+1, tc.sid, tc.parent, tc.fname)
					if err != nil || r.Status != tc.status {
						t.Errorf("status %d (%v), err %v; want %d", r.Status, r.Cause, err, tc.status)
					}
				})
			}
			if got := names(m); !slices.Equal(got, want) {
				t.Errorf("server folders after refused updates %q", got)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	ctx := context.Background()
	e := newEngine(t)
	m := newMem("Trash:trash", "Work", "Work/A", "Keep")
	r := folderSync(t, e, m, 0) // 1 INBOX, 2 Keep, 3 Trash, 4 Work, 5 Work/A
	for _, sid := range []string{"2", "4", "5"} {
		if err := e.Store.PutSyncState(ctx, user, device, sid, nil, &devices.SyncState{Key: 3, Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		sid    string
		status int
	}{{"1", StatusSpecial}, {"3", StatusSpecial}, {"42", StatusNotFound}, {"", StatusMalformed}} {
		d, err := e.Delete(ctx, m, user, device, r.SyncKey, tc.sid)
		if err != nil || d.Status != tc.status {
			t.Errorf("Delete %q: status %d, err %v; want %d", tc.sid, d.Status, err, tc.status)
		}
	}
	d, err := e.Delete(ctx, m, user, device, r.SyncKey, "4")
	if err != nil || d.Status != StatusOK {
		t.Fatalf("Delete: %+v %v", d, err)
	}
	if got := names(m); !slices.Equal(got, []string{"INBOX", "Keep", "Trash"}) {
		t.Errorf("server folders %q", got)
	}
	colls, _ := e.Store.SyncCollections(ctx, user, device)
	if !slices.Equal(colls, []string{"", "2"}) {
		t.Errorf("collections with state %q, want the hierarchy and 2", colls)
	}
	if r := folderSync(t, e, m, d.SyncKey); r.Changes.Count() != 0 {
		t.Errorf("FolderSync after Delete: %s", show(r.Changes))
	}
	d2, err := e.Delete(ctx, m, user, device, r.SyncKey, "4")
	if err != nil || d2.Status != StatusOK || !d2.Replayed || d2.SyncKey != d.SyncKey {
		t.Errorf("repeated Delete: %+v %v", d2, err)
	}
	// Deleted on the server behind the device's back: 4.
	m.remove("Keep")
	d3, err := e.Delete(ctx, m, user, device, d.SyncKey, "2")
	if err != nil || d3.Status != StatusNotFound {
		t.Errorf("Delete of a folder gone from the server: %+v %v", d3, err)
	}
	// The backend refusing is passed on.
	m.add("Junk", backend.RoleJunk)
	r4 := folderSync(t, e, m, d.SyncKey)
	h, _ := Load(ctx, e.Store, user, device)
	sid, _ := h.ServerID(m.folder("Junk").ID)
	d4, err := e.Delete(ctx, m, user, device, r4.SyncKey, sid)
	if err != nil || d4.Status != StatusSpecial {
		t.Errorf("Delete of Junk: %+v %v", d4, err)
	}
}
