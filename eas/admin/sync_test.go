package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/eas/mailitem"
	"github.com/easgate/easgate/eas/mailsync"
)

// TestSyncReport: the sync report of a device lists each mail collection
// with what its last Sync left (here a real Sync of two messages out of
// three, WindowSize 2, over the in-memory IMAP server), and not the
// hierarchy; an unknown device is 404.
func TestSyncReport(t *testing.T) {
	forEachStore(t, func(t *testing.T, s devices.Store) {
		f := newFixture(t, s)
		f.seed(t, "alice", "ApplZ", "14.1")
		ctx := context.Background()
		m := testsrv.StartMemIMAP(t, nil)
		ms, err := imapstore.New(imapstore.Options{Addr: m.Addr})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ms.Close() })
		sess, err := ms.Open(ctx, "alice", m.Users["alice"])
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sess.Close() })
		folders, err := sess.Folders(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var id = folders[0].ID
		for _, fo := range folders {
			if fo.Name == "INBOX" {
				id = fo.ID
			}
		}
		for range 3 {
			raw := "Subject: m\r\n\r\nbody\r\n"
			if _, err := sess.Append(ctx, id, backend.AppendMessage{Size: int64(len(raw)), Body: strings.NewReader(raw), Date: time.Now()}); err != nil {
				t.Fatal(err)
			}
		}
		eng := &mailsync.Engine{Store: s}
		req := &mailsync.Request{User: "alice", Device: "applz", Collection: "5", Folder: id, Session: sess, SyncKey: "0",
			Options: mailsync.Options{WindowSize: 2, Item: mailitem.Options{Version: "14.1"}}}
		r, err := eng.Sync(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		req.SyncKey, req.Options.GetChanges = r.SyncKey, true
		if r, err = eng.Sync(ctx, req); err != nil || len(r.Adds) != 2 {
			t.Fatalf("Sync: %v, %+v", err, r)
		}
		if err := s.PutSyncState(ctx, "alice", "applz", devices.HierarchyCollection, nil, &devices.SyncState{Key: 7, Data: []byte("h")}); err != nil {
			t.Fatal(err)
		}
		code, body := f.do(t, http.MethodGet, "/api/v1/devices/alice/APPLZ/sync", "")
		var got []CollectionSync
		if err := json.Unmarshal(body, &got); err != nil || code != http.StatusOK {
			t.Fatalf("sync report = %d %s (%v)", code, body, err)
		}
		if len(got) != 1 || got[0].Collection != "5" || got[0].Tracked != 2 || len(got[0].Failed) != 0 {
			t.Errorf("sync report %s", body)
		}
		if code, _ := f.do(t, http.MethodGet, "/api/v1/devices/alice/nope/sync", ""); code != http.StatusNotFound {
			t.Errorf("unknown device: %d, want 404", code)
		}
	})
}
