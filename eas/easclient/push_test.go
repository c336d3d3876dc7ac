package easclient

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/easgate/easgate/wbxml"
)

// xmlOf renders a document in the wbxml XML text form, for comparisons.
func xmlOf(t *testing.T, e *wbxml.Element) string {
	t.Helper()
	var b bytes.Buffer
	if err := wbxml.ToXML(&b, e); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestPingRequestAndResult(t *testing.T) {
	f := &fakeServer{reply: func(w http.ResponseWriter, r recorded) {
		writeWBXML(t, w, wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "2"),
			wbxml.E(wbxml.PingFolders, wbxml.T(wbxml.PingFolder, "5"), wbxml.T(wbxml.PingFolder, "9"))))
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := newClient(srv.URL)
	_, res, err := c.Ping(context.Background(), 900, PingFolder{"5", "Email"}, PingFolder{"9", "Calendar"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != 2 || !slices.Equal(res.Folders, []string{"5", "9"}) {
		t.Errorf("result %+v", res)
	}
	got := xmlOf(t, f.reqs[0].tree)
	want := xmlOf(t, wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingHeartbeatInterval, "900"),
		wbxml.E(wbxml.PingFolders,
			wbxml.E(wbxml.PingFolder, wbxml.T(wbxml.PingId, "5"), wbxml.T(wbxml.PingClass, "Email")),
			wbxml.E(wbxml.PingFolder, wbxml.T(wbxml.PingId, "9"), wbxml.T(wbxml.PingClass, "Calendar")))))
	if got != want {
		t.Errorf("request\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(f.reqs[0].rawQuery, "Cmd=Ping") {
		t.Errorf("query %s", f.reqs[0].rawQuery)
	}

	// An empty Ping is a bare Ping element.
	if got := xmlOf(t, PingRequest(0)); got != xmlOf(t, wbxml.E(wbxml.PingPing)) {
		t.Errorf("empty Ping: %s", got)
	}
	for _, tc := range []struct {
		doc  *wbxml.Element
		want PingResult
	}{
		{wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "1")), PingResult{Status: 1}},
		{wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "5"), wbxml.T(wbxml.PingHeartbeatInterval, "60")), PingResult{Status: 5, HeartbeatInterval: 60}},
		{wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "6"), wbxml.T(wbxml.PingMaxFolders, "300")), PingResult{Status: 6, MaxFolders: 300}},
		{wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchyStatus, "1")), PingResult{}},
		{nil, PingResult{}},
	} {
		if got := ParsePing(tc.doc); got.Status != tc.want.Status || got.HeartbeatInterval != tc.want.HeartbeatInterval ||
			got.MaxFolders != tc.want.MaxFolders || len(got.Folders) != 0 {
			t.Errorf("ParsePing(%v) = %+v, want %+v", tc.doc, got, tc.want)
		}
	}
}

func TestSyncRequestAndResult(t *testing.T) {
	var empty bool
	f := &fakeServer{reply: func(w http.ResponseWriter, r recorded) {
		if empty {
			return
		}
		writeWBXML(t, w, wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections,
			wbxml.E(wbxml.AirSyncCollection,
				wbxml.T(wbxml.AirSyncSyncKey, "7"), wbxml.T(wbxml.AirSyncCollectionId, "5"), wbxml.T(wbxml.AirSyncStatus, "1"),
				wbxml.E(wbxml.AirSyncMoreAvailable),
				wbxml.E(wbxml.AirSyncCommands,
					wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncServerId, "5:1")),
					wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, "5:2")),
					wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, "5:3")),
					wbxml.E(wbxml.AirSyncSoftDelete, wbxml.T(wbxml.AirSyncServerId, "5:4")))))))
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := newClient(srv.URL)
	o := SyncOptions{WindowSize: 50, FilterType: "0", BodyType: 1, TruncationSize: 200}
	_, res, err := c.Sync(context.Background(), "6", "5", o)
	if err != nil {
		t.Fatal(err)
	}
	col, ok := res.Collection("5")
	if !ok || res.Empty || col.SyncKey != "7" || col.Status != 1 || !col.MoreAvailable ||
		!slices.Equal(col.Added, []string{"5:1"}) || !slices.Equal(col.Changed, []string{"5:2"}) ||
		!slices.Equal(col.Deleted, []string{"5:3", "5:4"}) {
		t.Errorf("result %+v", res)
	}
	got := xmlOf(t, f.reqs[0].tree)
	want := xmlOf(t, wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, wbxml.E(wbxml.AirSyncCollection,
		wbxml.T(wbxml.AirSyncSyncKey, "6"), wbxml.T(wbxml.AirSyncCollectionId, "5"), wbxml.E(wbxml.AirSyncGetChanges),
		wbxml.T(wbxml.AirSyncWindowSize, "50"),
		wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, "0"),
			wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "1"), wbxml.T(wbxml.AirSyncBaseTruncationSize, "200")))))))
	if got != want {
		t.Errorf("request\n%s\nwant\n%s", got, want)
	}
	// The first Sync of a collection carries no GetChanges and no options.
	got = xmlOf(t, SyncRequest("0", "5", SyncOptions{}))
	want = xmlOf(t, wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, wbxml.E(wbxml.AirSyncCollection,
		wbxml.T(wbxml.AirSyncSyncKey, "0"), wbxml.T(wbxml.AirSyncCollectionId, "5")))))
	if got != want {
		t.Errorf("key 0 request\n%s\nwant\n%s", got, want)
	}

	empty = true
	_, res, err = c.Sync(context.Background(), "7", "5", o)
	if err != nil || !res.Empty || len(res.Collections) != 0 {
		t.Errorf("empty response: %+v, %v", res, err)
	}
}

func TestFolderOfType(t *testing.T) {
	fc := FolderChanges{Add: []Folder{{ServerID: "1", Type: 4}, {ServerID: "2", Type: FolderTypeInbox}, {ServerID: "3", Type: FolderTypeInbox}}}
	if f, ok := fc.FolderOfType(FolderTypeInbox); !ok || f.ServerID != "2" {
		t.Errorf("inbox: %+v %v", f, ok)
	}
	if _, ok := fc.FolderOfType(8); ok {
		t.Error("found a calendar in a list without one")
	}
}
