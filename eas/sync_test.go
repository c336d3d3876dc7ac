package eas

import (
	"context"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/wbxml"
	"github.com/easgate/easgate/wbxml/wbxmltest"
)

// syncEnv is a Server on a private Dovecot with a device hierarchy of
// INBOX, Trash and Work made by FolderSync.
type syncEnv struct {
	*testEnv
	sess    backend.Session
	folders map[string]backend.FolderID // by ServerId
	ids     map[string]string           // ServerId by folder name
}

func newSyncEnv(t *testing.T) *syncEnv {
	d := testsrv.StartDovecot(t, map[string]string{testUser: testPassword})
	ms, err := imapstore.New(imapstore.Options{Addr: d.Addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ms.Close() })
	e := newEnv(t, withStore(t), withPolicy(t, noProvisioning), func(c *Config) { c.Mail = ms })
	ctx := context.Background()
	sess, err := ms.Open(ctx, testUser, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	for _, name := range []string{"Trash", "Work"} {
		if _, err := sess.CreateFolder(ctx, "", name); err != nil && !strings.Contains(err.Error(), "exists") {
			t.Fatal(err)
		}
	}
	fs, err := sess.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	se := &syncEnv{testEnv: e, sess: sess, folders: map[string]backend.FolderID{}, ids: map[string]string{}}
	// The device's hierarchy, as FolderSync makes it.
	he := &hierarchy.Engine{Store: e.store}
	if r, err := he.FolderSync(ctx, sess, testUser, "appldev1", 0); err != nil || r.Status != 1 {
		t.Fatalf("FolderSync: %v, status %d", err, r.Status)
	}
	h, err := hierarchy.Load(ctx, e.store, testUser, "appldev1")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		sid, ok := h.ServerID(f.ID)
		if !ok {
			t.Fatalf("no ServerId for %s", f.Name)
		}
		se.folders[sid] = f.ID
		se.ids[f.Name] = sid
	}
	return se
}

func (e *syncEnv) appendMsg(t *testing.T, sid string, i int) backend.UID {
	t.Helper()
	raw := fmt.Sprintf("From: s%d@example.com\r\nTo: jane@example.com\r\nSubject: message %d\r\nMessage-ID: <m%d@example.com>\r\n\r\nBody %d\r\n", i, i, i, i)
	uid, err := e.sess.Append(context.Background(), e.folders[sid], backend.AppendMessage{Size: int64(len(raw)), Body: strings.NewReader(raw), Date: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

func (e *syncEnv) flags(t *testing.T, sid string, uid backend.UID) []string {
	t.Helper()
	sums, err := e.sess.Summaries(context.Background(), e.folders[sid], backend.NewUIDSet(uid))
	if err != nil || len(sums) != 1 {
		t.Fatalf("summary of %s:%d: %v (%d)", sid, uid, err, len(sums))
	}
	return sums[0].Flags
}

// post sends a command and returns the HTTP response, checking non-empty
// bodies against Microsoft's schema where the oracles are present.
func (e *syncEnv) post(t *testing.T, cmd, schema string, body *wbxml.Element) (*httptest.ResponseRecorder, *wbxml.Element) {
	t.Helper()
	var raw []byte
	if body != nil {
		raw = mustMarshal(t, body)
	}
	w := e.do(post(cmd, "14.1", raw))
	if w.Code != 200 {
		t.Fatalf("%s: HTTP %d", cmd, w.Code)
	}
	if w.Body.Len() == 0 {
		return w, nil
	}
	doc := decode(t, w)
	w.Body.Reset()
	w.Body.WriteByte(0) // not empty: the caller looks at doc
	wbxmltest.ValidateResponse(t, schema, mustMarshal(t, doc))
	return w, doc
}

func syncReq(colls ...*wbxml.Element) *wbxml.Element {
	return wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, colls...))
}

func collReq(key, id string, window int, extra ...*wbxml.Element) *wbxml.Element {
	c := wbxml.E(wbxml.AirSyncCollection, wbxml.T(wbxml.AirSyncSyncKey, key), wbxml.T(wbxml.AirSyncCollectionId, id))
	if window > 0 {
		c.Add(wbxml.T(wbxml.AirSyncWindowSize, fmt.Sprint(window)))
	}
	c.Add(wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, "0"),
		wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "1"), wbxml.T(wbxml.AirSyncBaseTruncationSize, "500"))))
	return c.Add(extra...)
}

// collection returns the response's Collection with the id.
func collection(t *testing.T, doc *wbxml.Element, id string) *wbxml.Element {
	t.Helper()
	if doc == nil {
		t.Fatalf("empty response, want collection %s", id)
	}
	for _, c := range doc.Child(wbxml.AirSyncCollections).ChildrenOf(wbxml.AirSyncCollection) {
		if c.ChildText(wbxml.AirSyncCollectionId) == id {
			return c
		}
	}
	t.Fatalf("no collection %s in the response", id)
	return nil
}

func adds(c *wbxml.Element) []string {
	var ids []string
	if cmds := c.Child(wbxml.AirSyncCommands); cmds != nil {
		for _, a := range cmds.ChildrenOf(wbxml.AirSyncAdd) {
			ids = append(ids, a.ChildText(wbxml.AirSyncServerId))
		}
	}
	return ids
}

func TestSyncHTTP(t *testing.T) {
	e := newSyncEnv(t)
	in := e.ids["INBOX"]
	for i := 1; i <= 7; i++ {
		e.appendMsg(t, in, i)
	}
	_, doc := e.post(t, "Sync", "SyncResponse", syncReq(collReq("0", in, 5)))
	c := collection(t, doc, in)
	key := c.ChildText(wbxml.AirSyncSyncKey)
	if c.ChildText(wbxml.AirSyncStatus) != "1" || key == "0" || len(adds(c)) != 0 {
		t.Fatalf("priming: %v", c)
	}
	_, doc = e.post(t, "Sync", "SyncResponse", syncReq(collReq(key, in, 5)))
	c = collection(t, doc, in)
	if got := adds(c); len(got) != 5 || !c.Has(wbxml.AirSyncMoreAvailable) {
		t.Fatalf("first window: %v, MoreAvailable %v", got, c.Has(wbxml.AirSyncMoreAvailable))
	}
	key = c.ChildText(wbxml.AirSyncSyncKey)
	_, doc = e.post(t, "Sync", "SyncResponse", syncReq(collReq(key, in, 5)))
	c = collection(t, doc, in)
	if got := adds(c); len(got) != 2 || c.Has(wbxml.AirSyncMoreAvailable) {
		t.Fatalf("second window: %v", got)
	}
	key = c.ChildText(wbxml.AirSyncSyncKey)
	// Nothing changed: a truly empty response.
	if w, _ := e.post(t, "Sync", "SyncResponse", syncReq(collReq(key, in, 5))); w.Body.Len() != 0 {
		t.Fatalf("no changes: body %x", w.Body.Bytes())
	}
	// Mark 1:1 read, fetch 1:2, delete an unknown one.
	cmds := wbxml.E(wbxml.AirSyncCommands,
		wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, in+":1"), wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1"))),
		wbxml.E(wbxml.AirSyncFetch, wbxml.T(wbxml.AirSyncServerId, in+":2")),
		wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, in+":99")))
	_, doc = e.post(t, "Sync", "SyncResponse", syncReq(collReq(key, in, 5, cmds)))
	c = collection(t, doc, in)
	if c.Has(wbxml.AirSyncCommands) {
		t.Errorf("client change echoed: %v", c.Child(wbxml.AirSyncCommands))
	}
	rs := c.Child(wbxml.AirSyncResponses)
	if rs == nil || len(rs.Children) != 2 || rs.Child(wbxml.AirSyncFetch).ChildText(wbxml.AirSyncStatus) != "1" ||
		rs.Child(wbxml.AirSyncDelete).ChildText(wbxml.AirSyncStatus) != "8" {
		t.Errorf("responses: %v", rs)
	}
	if !backend.HasFlag(e.flags(t, in, 1), backend.FlagSeen) {
		t.Error(`1:1 is not \Seen in IMAP`)
	}
	key = c.ChildText(wbxml.AirSyncSyncKey)
	// An empty request repeats the cached one with the phone's key.
	e.appendMsg(t, in, 8)
	w := e.do(post("Sync", "14.1", nil))
	if w.Code != 200 || w.Body.Len() == 0 {
		t.Fatalf("empty Sync: HTTP %d, %d bytes", w.Code, w.Body.Len())
	}
	c = collection(t, decode(t, w), in)
	if got := adds(c); len(got) != 1 || got[0] != in+":8" {
		t.Errorf("empty Sync brought %v, want 1:8", got)
	}
	if c.ChildText(wbxml.AirSyncSyncKey) == key {
		t.Error("empty Sync kept the key")
	}
	// Wait is answered at once; an out-of-range one gets 14 + Limit.
	bad := syncReq(collReq(key, in, 5))
	bad.Add(wbxml.T(wbxml.AirSyncWait, "90"))
	_, doc = e.post(t, "Sync", "SyncResponse", bad)
	if doc.ChildText(wbxml.AirSyncStatus) != "14" || doc.ChildText(wbxml.AirSyncLimit) != "59" {
		t.Errorf("Wait 90: %v", doc)
	}
	// An unknown collection: hierarchy changed.
	_, doc = e.post(t, "Sync", "SyncResponse", syncReq(collReq("0", "77", 5)))
	if s := collection(t, doc, "77").ChildText(wbxml.AirSyncStatus); s != "12" {
		t.Errorf("unknown collection: status %s", s)
	}
}

func TestSyncEmptyWithoutCache(t *testing.T) {
	e := newSyncEnv(t)
	w := e.do(post("Sync", "14.1", nil))
	doc := decode(t, w)
	if doc.ChildText(wbxml.AirSyncStatus) != "13" {
		t.Errorf("empty Sync without cache: %v", doc)
	}
	wbxmltest.ValidateResponse(t, "SyncResponse", mustMarshal(t, doc))
}

func TestGetItemEstimateAndMoveItems(t *testing.T) {
	e := newSyncEnv(t)
	in, work := e.ids["INBOX"], e.ids["Work"]
	for i := 1; i <= 3; i++ {
		e.appendMsg(t, in, i)
	}
	est := func(key, id string) (string, string) {
		_, doc := e.post(t, "GetItemEstimate", "GetItemEstimateResponse", wbxml.E(wbxml.GetItemEstimateGetItemEstimate,
			wbxml.E(wbxml.GetItemEstimateCollections, wbxml.E(wbxml.GetItemEstimateCollection,
				wbxml.T(wbxml.AirSyncSyncKey, key), wbxml.T(wbxml.GetItemEstimateCollectionId, id),
				wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, "0"))))))
		r := doc.Child(wbxml.GetItemEstimateResponse)
		return r.ChildText(wbxml.GetItemEstimateStatus), r.Child(wbxml.GetItemEstimateCollection).ChildText(wbxml.GetItemEstimateEstimate)
	}
	if s, _ := est("0", in); s != "3" {
		t.Errorf("before priming: status %s", s)
	}
	if s, _ := est("0", "77"); s != "2" {
		t.Errorf("unknown collection: status %s", s)
	}
	keys := map[string]string{}
	for _, id := range []string{in, work} {
		_, doc := e.post(t, "Sync", "SyncResponse", syncReq(collReq("0", id, 50)))
		keys[id] = collection(t, doc, id).ChildText(wbxml.AirSyncSyncKey)
	}
	// Work is empty: its first Sync stores the first snapshot all the same.
	_, doc := e.post(t, "Sync", "SyncResponse", syncReq(collReq(keys[work], work, 50)))
	keys[work] = collection(t, doc, work).ChildText(wbxml.AirSyncSyncKey)
	if s, n := est(keys[in], in); s != "1" || n != "3" {
		t.Errorf("primed: status %s estimate %s", s, n)
	}
	if s, _ := est("424242", in); s != "4" {
		t.Errorf("bad key: status %s", s)
	}
	_, doc = e.post(t, "Sync", "SyncResponse", syncReq(collReq(keys[in], in, 50)))
	keys[in] = collection(t, doc, in).ChildText(wbxml.AirSyncSyncKey)

	move := func(src, from, to string) *wbxml.Element {
		return wbxml.E(wbxml.MoveMove, wbxml.T(wbxml.MoveSrcMsgId, src), wbxml.T(wbxml.MoveSrcFldId, from), wbxml.T(wbxml.MoveDstFldId, to))
	}
	_, doc = e.post(t, "MoveItems", "MoveItemsResponse", wbxml.E(wbxml.MoveMoveItems,
		move(in+":2", in, work), move(in+":99", in, work), move(in+":1", in, in), move(in+":1", in, "77"), move(in+":3", "55", work)))
	var got []string
	for _, r := range doc.ChildrenOf(wbxml.MoveResponse) {
		got = append(got, r.ChildText(wbxml.MoveSrcMsgId)+"="+r.ChildText(wbxml.MoveStatus)+"/"+r.ChildText(wbxml.MoveDstMsgId))
	}
	if want := fmt.Sprintf("[%[1]s:2=3/%[2]s:1 %[1]s:99=1/ %[1]s:1=4/ %[1]s:1=2/ %[1]s:3=1/]", in, work); fmt.Sprint(got) != want {
		t.Errorf("MoveItems: %v, want %s", got, want)
	}
	// Neither folder reports the moved message again.
	if _, doc := e.post(t, "Sync", "SyncResponse", syncReq(collReq(keys[in], in, 50), collReq(keys[work], work, 50))); doc != nil {
		var sb strings.Builder
		wbxml.ToXML(&sb, doc)
		t.Errorf("after the move: %s", sb.String())
	}
}

// TestSyncPartial: a Partial request lists one collection; the cached
// other one is synced too, with the key the phone holds.
func TestSyncPartial(t *testing.T) {
	e := newSyncEnv(t)
	in, work := e.ids["INBOX"], e.ids["Work"]
	_, doc := e.post(t, "Sync", "SyncResponse", syncReq(collReq("0", in, 10), collReq("0", work, 10)))
	keys := map[string]string{in: collection(t, doc, in).ChildText(wbxml.AirSyncSyncKey), work: collection(t, doc, work).ChildText(wbxml.AirSyncSyncKey)}
	_, doc = e.post(t, "Sync", "SyncResponse", syncReq(collReq(keys[in], in, 10), collReq(keys[work], work, 10)))
	for _, id := range []string{in, work} {
		keys[id] = collection(t, doc, id).ChildText(wbxml.AirSyncSyncKey)
	}
	e.appendMsg(t, work, 1)
	e.appendMsg(t, in, 2)
	partial := syncReq(collReq(keys[in], in, 10))
	partial.Add(wbxml.E(wbxml.AirSyncPartial))
	_, doc = e.post(t, "Sync", "SyncResponse", partial)
	if got := adds(collection(t, doc, in)); len(got) != 1 {
		t.Errorf("listed collection: adds %v", got)
	}
	if got := adds(collection(t, doc, work)); len(got) != 1 || got[0] != work+":1" {
		t.Errorf("cached collection: adds %v", got)
	}
}
