package eas

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/eas/mailsync"
	"github.com/easgate/easgate/wbxml"
	"github.com/easgate/easgate/wbxml/wbxmltest"
)

// The tests in this file drive the server the way real phones do (the
// digest §3 and §5: what iOS Mail, Gmail/AOSP, Samsung and Outlook send),
// against a private Dovecot, and check the answers against Microsoft's
// schemas and what IMAP holds afterwards.

// appendDated appends message i to the folder with the given date and a
// body of n letters after "Body i".
func (e *syncEnv) appendDated(t *testing.T, sid string, i int, date time.Time, n int) backend.UID {
	t.Helper()
	raw := fmt.Sprintf("From: s%d@example.com\r\nTo: jane@example.com\r\nSubject: message %d\r\nMessage-ID: <q%d@example.com>\r\n"+
		"Date: %s\r\n\r\nBody %d %s\r\n", i, i, i, date.Format(time.RFC1123Z), i, strings.Repeat("x", n))
	uid, err := e.sess.Append(context.Background(), e.folders[sid], backend.AppendMessage{Size: int64(len(raw)), Body: strings.NewReader(raw), Date: date})
	if err != nil {
		t.Fatal(err)
	}
	return uid
}

// appendRange appends messages from through to (see appendDated, with no
// extra letters) to the folder, dated date.
func (e *syncEnv) appendRange(t *testing.T, sid string, from, to int, date time.Time) {
	t.Helper()
	for i := from; i <= to; i++ {
		e.appendDated(t, sid, i, date, 0)
	}
}

// noOracles logs once that the XSDs are not there.
var noOracles sync.Once

// send posts a command in the given protocol version and returns the
// HTTP response and its decoded body (nil when empty). A non-empty body
// is checked against Microsoft's schema when the shared oracles are
// present; unlike syncEnv.post, the test goes on without them, so the
// behaviour is checked everywhere.
func (e *syncEnv) send(t *testing.T, version, cmd, schema string, body *wbxml.Element) (*httptest.ResponseRecorder, *wbxml.Element) {
	t.Helper()
	var raw []byte
	if body != nil {
		raw = mustMarshal(t, body)
	}
	w := e.do(post(cmd, version, raw))
	if w.Code != 200 {
		t.Fatalf("%s %s: HTTP %d", version, cmd, w.Code)
	}
	if w.Body.Len() == 0 {
		return w, nil
	}
	doc := decode(t, w)
	checkSchema(t, schema, doc)
	return w, doc
}

// checkSchema checks a response against Microsoft's schema when the
// shared oracles are present.
func checkSchema(t *testing.T, schema string, doc *wbxml.Element) {
	t.Helper()
	if _, err := wbxmltest.OraclesDir(); err != nil {
		noOracles.Do(func() { t.Logf("responses not checked against the XSDs: %v", err) })
	} else if err := wbxmltest.CheckResponse(schema, mustMarshal(t, doc)); err != nil {
		t.Fatal(err)
	}
}

// await waits for a command sent in the background (pingEnv.start) and
// returns its decoded answer, nil when empty; a non-empty one is checked
// against the command's response schema (checkSchema).
func await(t *testing.T, ctx context.Context, ch <-chan *httptest.ResponseRecorder, cmd string) *wbxml.Element {
	t.Helper()
	select {
	case w := <-ch:
		if w.Code != 200 {
			t.Fatalf("%s: HTTP %d", cmd, w.Code)
		}
		if w.Body.Len() == 0 {
			return nil
		}
		doc := decode(t, w)
		checkSchema(t, cmd+"Response", doc)
		return doc
	case <-ctx.Done():
		t.Fatalf("%s did not answer", cmd)
	}
	return nil
}

// sync sends a 14.1 Sync and returns the decoded answer, nil when empty.
func (e *syncEnv) sync(t *testing.T, body *wbxml.Element) *wbxml.Element {
	t.Helper()
	_, doc := e.send(t, "14.1", "Sync", "SyncResponse", body)
	return doc
}

// bareColl is a Sync Collection without Options: SyncKey, CollectionId,
// then extra in order.
func bareColl(key, id string, extra ...*wbxml.Element) *wbxml.Element {
	return wbxml.E(wbxml.AirSyncCollection, wbxml.T(wbxml.AirSyncSyncKey, key), wbxml.T(wbxml.AirSyncCollectionId, id)).Add(extra...)
}

// addsByID returns the Adds of a response collection by ServerId.
func addsByID(c *wbxml.Element) map[string]*wbxml.Element {
	m := map[string]*wbxml.Element{}
	if cmds := c.Child(wbxml.AirSyncCommands); cmds != nil {
		for _, a := range cmds.ChildrenOf(wbxml.AirSyncAdd) {
			m[a.ChildText(wbxml.AirSyncServerId)] = a.Child(wbxml.AirSyncApplicationData)
		}
	}
	return m
}

// TestQuirkStickyOptions: a phone sends Options (FilterType, body
// preference) when it starts a collection and may leave them out of later
// Syncs. MS-ASCMD 2.2.3.125.6: the server keeps them ("sticky options")
// until the client sends new ones, however many requests leave them out.
// Forgetting them re-sends every old message (FilterType 0) with whole
// bodies.
func TestQuirkStickyOptions(t *testing.T) {
	e := newSyncEnv(t)
	in := e.ids["INBOX"]
	now := e.now
	e.appendDated(t, in, 1, now.AddDate(0, 0, -40), 100) // outside one week
	e.appendDated(t, in, 2, now.Add(-time.Hour), 100)
	opts := wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, "3"),
		wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "1"), wbxml.T(wbxml.AirSyncBaseTruncationSize, "20")))
	doc := e.sync(t, syncReq(bareColl("0", in, opts)))
	key := collection(t, doc, in).ChildText(wbxml.AirSyncSyncKey)

	check := func(round int, want string) {
		t.Helper()
		doc := e.sync(t, syncReq(bareColl(key, in)))
		c := collection(t, doc, in)
		key = c.ChildText(wbxml.AirSyncSyncKey)
		got := addsByID(c)
		if len(got) != 1 || got[want] == nil {
			t.Fatalf("round %d without Options: adds %v, want only %s (FilterType 3 kept)", round, adds(c), want)
		}
		b := got[want].Child(wbxml.AirSyncBaseBody)
		if b.ChildText(wbxml.AirSyncBaseType) != "1" || b.ChildText(wbxml.AirSyncBaseTruncated) != "1" || len(b.ChildText(wbxml.AirSyncBaseData)) > 20 {
			t.Fatalf("round %d without Options: body %v, want plain text truncated at 20", round, b)
		}
	}
	check(1, in+":2")
	e.appendDated(t, in, 3, now.Add(-time.Minute), 100)
	check(2, in+":3")
	e.appendDated(t, in, 4, now.Add(-time.Minute), 100)
	check(3, in+":4")
	// A Sync of another folder alone, with its own Options, replaces the
	// cached request; the Inbox's Options still stick.
	work := e.ids["Work"]
	e.sync(t, syncReq(bareColl("0", work, wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, "0")))))
	e.appendDated(t, in, 5, now.Add(-time.Minute), 100)
	check(4, in+":5")
	e.appendDated(t, in, 6, now.Add(-time.Minute), 100)
	check(5, in+":6")
}

// moreAvailable reports whether the response collection has MoreAvailable.
func moreAvailable(c *wbxml.Element) bool { return c.Has(wbxml.AirSyncMoreAvailable) }

// TestQuirkWindowSizeEdges: WindowSize as phones send it (MS-ASCMD
// 2.2.3.199): 1 gives one item and MoreAvailable; 0 and values above 512
// mean 512; AOSP grows it from 10 in steps of 10; the top-level
// WindowSize (12.1+) caps the whole response across collections.
func TestQuirkWindowSizeEdges(t *testing.T) {
	e := newSyncEnv(t)
	in, work := e.ids["INBOX"], e.ids["Work"]
	e.appendRange(t, in, 1, 103, e.now.Add(-time.Hour))
	e.appendRange(t, work, 201, 203, e.now.Add(-time.Hour))
	keys := map[string]string{}
	doc := e.sync(t, syncReq(collReq("0", in, 1), collReq("0", work, 1)))
	for _, id := range []string{in, work} {
		keys[id] = collection(t, doc, id).ChildText(wbxml.AirSyncSyncKey)
	}
	step := func(what, id string, window string, wantAdds int, wantMore bool) {
		t.Helper()
		c := collReq(keys[id], id, 0)
		c.Children = slices.Insert(c.Children, 2, wbxml.T(wbxml.AirSyncWindowSize, window))
		cc := collection(t, e.sync(t, syncReq(c)), id)
		keys[id] = cc.ChildText(wbxml.AirSyncSyncKey)
		if got := len(adds(cc)); got != wantAdds || moreAvailable(cc) != wantMore {
			t.Fatalf("%s: %d adds, MoreAvailable %v; want %d, %v", what, got, moreAvailable(cc), wantAdds, wantMore)
		}
	}
	step("WindowSize 1", in, "1", 1, true)
	step("WindowSize 0 is 512", in, "0", 102, false)
	step("WindowSize 1000 is 512", work, "1000", 3, false)

	// The top-level WindowSize caps both collections together.
	e.appendRange(t, in, 104, 106, e.now.Add(-time.Hour))
	e.appendRange(t, work, 204, 206, e.now.Add(-time.Hour))
	req := syncReq(collReq(keys[in], in, 10), collReq(keys[work], work, 10))
	req.Add(wbxml.T(wbxml.AirSyncWindowSize, "4"))
	doc = e.sync(t, req)
	total, more := 0, false
	for _, id := range []string{in, work} {
		c := collection(t, doc, id)
		keys[id] = c.ChildText(wbxml.AirSyncSyncKey)
		total += len(adds(c))
		more = more || moreAvailable(c)
	}
	if total != 4 || !more {
		t.Fatalf("top-level WindowSize 4: %d adds, MoreAvailable %v", total, more)
	}
}

// estimate sends a 14.1 GetItemEstimate for one collection and returns
// its Status and Estimate.
func (e *syncEnv) estimate(t *testing.T, key, id, filter string) (status, n string) {
	t.Helper()
	_, doc := e.send(t, "14.1", "GetItemEstimate", "GetItemEstimateResponse", wbxml.E(wbxml.GetItemEstimateGetItemEstimate,
		wbxml.E(wbxml.GetItemEstimateCollections, wbxml.E(wbxml.GetItemEstimateCollection,
			wbxml.T(wbxml.AirSyncSyncKey, key), wbxml.T(wbxml.GetItemEstimateCollectionId, id),
			wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, filter))))))
	r := doc.Child(wbxml.GetItemEstimateResponse)
	return r.ChildText(wbxml.GetItemEstimateStatus), r.Child(wbxml.GetItemEstimateCollection).ChildText(wbxml.GetItemEstimateEstimate)
}

// TestQuirkSyncRefusals: requests a phone must not send get the status
// that makes it recover (MS-ASCMD 2.2.3.177.17): Commands with SyncKey 0
// (Status 4, digest §3.4 "Priming"), more collections than the server
// takes (Status 15 with Limit), an unknown key (Status 3 and SyncKey 0,
// so the phone starts over), Wait and HeartbeatInterval together (4).
func TestQuirkSyncRefusals(t *testing.T) {
	e := newSyncEnv(t)
	in := e.ids["INBOX"]
	e.appendDated(t, in, 1, e.now, 0)
	cmds := wbxml.E(wbxml.AirSyncCommands, wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, in+":1"),
		wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1"))))
	c := collection(t, e.sync(t, syncReq(collReq("0", in, 5, cmds))), in)
	if c.ChildText(wbxml.AirSyncStatus) != "4" {
		t.Errorf("Commands with SyncKey 0: %v, want Status 4", c)
	}
	if backend.HasFlag(e.flags(t, in, 1), backend.FlagSeen) {
		t.Error("the Change sent with SyncKey 0 was applied")
	}

	var many []*wbxml.Element
	for i := 0; i <= maxSyncFolders; i++ {
		many = append(many, collReq("0", fmt.Sprint(1000+i), 5))
	}
	doc := e.sync(t, syncReq(many...))
	if doc.ChildText(wbxml.AirSyncStatus) != "15" || doc.ChildText(wbxml.AirSyncLimit) != fmt.Sprint(maxSyncFolders) || doc.Has(wbxml.AirSyncCollections) {
		t.Errorf("%d collections: %v, want Status 15 and Limit %d", len(many), doc, maxSyncFolders)
	}

	c = collection(t, e.sync(t, syncReq(collReq("4711", in, 5))), in)
	if c.ChildText(wbxml.AirSyncStatus) != "3" || c.ChildText(wbxml.AirSyncSyncKey) != "0" {
		t.Errorf("unknown key: %v, want Status 3 and SyncKey 0", c)
	}

	both := syncReq(collReq("0", in, 5))
	both.Add(wbxml.T(wbxml.AirSyncWait, "5"), wbxml.T(wbxml.AirSyncHeartbeatInterval, "300"))
	if doc := e.sync(t, both); doc.ChildText(wbxml.AirSyncStatus) != "4" {
		t.Errorf("Wait and HeartbeatInterval: %v, want Status 4", doc)
	}
}

// TestQuirkFolderSyncZeroKeepsItems: Gmail (2025.11) sends FolderSync
// with SyncKey 0 on pull-to-refresh (digest §3.2, Z-Push #176). The
// folder list comes again with the same ServerIds, and the mail already
// on the phone is not sent again: its Sync key still works, the estimate
// is 0 and the next Sync is empty.
func TestQuirkFolderSyncZeroKeepsItems(t *testing.T) {
	e := newSyncEnv(t)
	in := e.ids["INBOX"]
	e.appendRange(t, in, 1, 3, e.now)
	folderSync := func(key string) (string, map[string]string) {
		t.Helper()
		_, doc := e.send(t, "14.1", "FolderSync", "FolderSyncResponse",
			wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchySyncKey, key)))
		if doc.ChildText(wbxml.FolderHierarchyStatus) != "1" {
			t.Fatalf("FolderSync %s: %v", key, doc)
		}
		ids := map[string]string{}
		if ch := doc.Child(wbxml.FolderHierarchyChanges); ch != nil {
			for _, a := range ch.ChildrenOf(wbxml.FolderHierarchyAdd) {
				ids[a.ChildText(wbxml.FolderHierarchyDisplayName)] = a.ChildText(wbxml.FolderHierarchyServerId)
			}
		}
		return doc.ChildText(wbxml.FolderHierarchySyncKey), ids
	}
	c := collection(t, e.sync(t, syncReq(collReq("0", in, 10))), in)
	c = collection(t, e.sync(t, syncReq(collReq(c.ChildText(wbxml.AirSyncSyncKey), in, 10))), in)
	key := c.ChildText(wbxml.AirSyncSyncKey)
	if len(adds(c)) != 3 {
		t.Fatalf("initial sync: adds %v", adds(c))
	}

	hkey, ids := folderSync("0")
	var got, want []string
	for _, sid := range ids {
		got = append(got, sid)
	}
	for _, sid := range e.ids {
		want = append(want, sid)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("FolderSync 0 again: ServerIds %v, were %v", got, want)
	}
	if st, n := e.estimate(t, key, in, "0"); st != "1" || n != "0" {
		t.Errorf("after FolderSync 0: estimate status %s, %s items; want 1, 0", st, n)
	}
	if doc := e.sync(t, syncReq(collReq(key, in, 10))); doc != nil {
		t.Errorf("after FolderSync 0: Sync with the phone's key answered %v, want the empty response", doc)
	}
	if _, ids := folderSync(hkey); len(ids) != 0 {
		t.Errorf("FolderSync with the new key: adds %v", ids)
	}
}

// TestQuirkSync121: a 12.1 phone (the digest §3.4, §3.5) puts Class in
// each Collection and sends GetItemEstimate as Collection > Class,
// SyncKey, CollectionId, FilterType. Its answers list every collection,
// also one with nothing to report (only 14.0+ may leave those out), and
// carry no 14.0+ elements.
func TestQuirkSync121(t *testing.T) {
	e := newSyncEnv(t)
	in, work := e.ids["INBOX"], e.ids["Work"]
	e.appendDated(t, in, 1, e.now.AddDate(0, 0, -3), 0)
	e.appendDated(t, in, 2, e.now, 0)
	coll := func(key, id string) *wbxml.Element {
		return wbxml.E(wbxml.AirSyncCollection, wbxml.T(wbxml.AirSyncClass, "Email"),
			wbxml.T(wbxml.AirSyncSyncKey, key), wbxml.T(wbxml.AirSyncCollectionId, id),
			wbxml.T(wbxml.AirSyncDeletesAsMoves, "1"), wbxml.E(wbxml.AirSyncGetChanges), wbxml.T(wbxml.AirSyncWindowSize, "25"),
			wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, "0"),
				wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "2"), wbxml.T(wbxml.AirSyncBaseTruncationSize, "5120"))))
	}
	keys := map[string]string{}
	_, doc := e.send(t, "12.1", "Sync", "SyncResponse", syncReq(coll("0", in), coll("0", work)))
	for _, id := range []string{in, work} {
		c := collection(t, doc, id)
		if c.ChildText(wbxml.AirSyncStatus) != "1" {
			t.Fatalf("priming %s: %v", id, c)
		}
		keys[id] = c.ChildText(wbxml.AirSyncSyncKey)
	}
	estimate := func(filter string) (string, string) {
		_, doc := e.send(t, "12.1", "GetItemEstimate", "GetItemEstimateResponse", wbxml.E(wbxml.GetItemEstimateGetItemEstimate,
			wbxml.E(wbxml.GetItemEstimateCollections, wbxml.E(wbxml.GetItemEstimateCollection,
				wbxml.T(wbxml.GetItemEstimateClass, "Email"), wbxml.T(wbxml.AirSyncSyncKey, keys[in]),
				wbxml.T(wbxml.GetItemEstimateCollectionId, in), wbxml.T(wbxml.AirSyncFilterType, filter)))))
		r := doc.Child(wbxml.GetItemEstimateResponse)
		return r.ChildText(wbxml.GetItemEstimateStatus), r.Child(wbxml.GetItemEstimateCollection).ChildText(wbxml.GetItemEstimateEstimate)
	}
	if st, n := estimate("0"); st != "1" || n != "2" {
		t.Errorf("12.1 GetItemEstimate, all: status %s estimate %s, want 1, 2", st, n)
	}
	if st, n := estimate("1"); st != "1" || n != "1" {
		t.Errorf("12.1 GetItemEstimate, one day: status %s estimate %s, want 1, 1", st, n)
	}
	_, doc = e.send(t, "12.1", "Sync", "SyncResponse", syncReq(coll(keys[in], in), coll(keys[work], work)))
	c := collection(t, doc, in)
	got := addsByID(c)
	if len(got) != 2 {
		t.Fatalf("12.1 Sync: adds %v", adds(c))
	}
	for id, ad := range got {
		b := ad.Child(wbxml.AirSyncBaseBody)
		if b == nil || b.ChildText(wbxml.AirSyncBaseType) != "2" {
			t.Errorf("%s: body %v, want Type 2", id, b)
		}
		for _, tag := range []wbxml.Tag{wbxml.AirSyncBasePreview, wbxml.Email2ConversationId, wbxml.Email2ConversationIndex, wbxml.EmailCategories} {
			if ad.Has(tag) {
				t.Errorf("%s: 12.1 item has %v", id, tag)
			}
		}
	}
	w := collection(t, doc, work)
	if w.ChildText(wbxml.AirSyncStatus) != "1" || w.Has(wbxml.AirSyncCommands) {
		t.Errorf("12.1 Sync, folder with nothing new: %v", w)
	}
	keys[in], keys[work] = c.ChildText(wbxml.AirSyncSyncKey), w.ChildText(wbxml.AirSyncSyncKey)
	// Nothing new anywhere: HTTP 200 with an empty body (MS-ASCMD
	// 2.2.2.20), in 12.1 too.
	if w, doc := e.send(t, "12.1", "Sync", "SyncResponse", syncReq(coll(keys[in], in), coll(keys[work], work))); doc != nil || w.Header().Get("Content-Length") != "0" {
		t.Errorf("12.1 Sync with nothing new: %v, Content-Length %q", doc, w.Header().Get("Content-Length"))
	}
}

// TestQuirkUnchangedCollectionsLeftOut: from 14.0 a Sync answer lists
// only the collections with something to report (MS-ASCMD 2.2.2.20; the
// digest §3.4); the phone keeps its key for the others.
func TestQuirkUnchangedCollectionsLeftOut(t *testing.T) {
	e := newSyncEnv(t)
	in, work := e.ids["INBOX"], e.ids["Work"]
	keys := map[string]string{}
	doc := e.sync(t, syncReq(collReq("0", in, 10), collReq("0", work, 10)))
	for _, id := range []string{in, work} {
		keys[id] = collection(t, doc, id).ChildText(wbxml.AirSyncSyncKey)
	}
	doc = e.sync(t, syncReq(collReq(keys[in], in, 10), collReq(keys[work], work, 10)))
	for _, id := range []string{in, work} {
		keys[id] = collection(t, doc, id).ChildText(wbxml.AirSyncSyncKey) // first snapshots
	}
	e.appendDated(t, work, 1, e.now, 0)
	doc = e.sync(t, syncReq(collReq(keys[in], in, 10), collReq(keys[work], work, 10)))
	cs := doc.Child(wbxml.AirSyncCollections).ChildrenOf(wbxml.AirSyncCollection)
	if len(cs) != 1 || cs[0].ChildText(wbxml.AirSyncCollectionId) != work || len(adds(cs[0])) != 1 {
		var sb strings.Builder
		wbxml.ToXML(&sb, doc)
		t.Fatalf("want only %s with its new message:\n%s", work, sb.String())
	}
	// The Inbox key the phone kept still works.
	if doc := e.sync(t, syncReq(collReq(keys[in], in, 10))); doc != nil {
		t.Errorf("Inbox with its kept key: %v", doc)
	}
}

// TestQuirkDeletesAndFlags: what phones send when the user deletes, flags
// and reads mail (the digest §4.2, checklist 11 and 12), with an LG
// phone's empty Supported element and an empty GetChanges (true): a
// Delete moves to Trash unless DeletesAsMoves is 0, when the message is
// expunged; Flag Status 2 sets \Flagged and an empty Flag clears it;
// a flag set by webmail reaches the phone as a Change with only the
// flags.
func TestQuirkDeletesAndFlags(t *testing.T) {
	e := newSyncEnv(t)
	in, trash := e.ids["INBOX"], e.ids["Trash"]
	e.appendRange(t, in, 1, 4, e.now)
	coll := func(key string, extra ...*wbxml.Element) *wbxml.Element {
		c := wbxml.E(wbxml.AirSyncCollection, wbxml.T(wbxml.AirSyncSyncKey, key), wbxml.T(wbxml.AirSyncCollectionId, in),
			wbxml.E(wbxml.AirSyncSupported))
		return c.Add(extra...)
	}
	opts := wbxml.E(wbxml.AirSyncOptions, wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "1")))
	c := collection(t, e.sync(t, syncReq(coll("0", opts))), in)
	c = collection(t, e.sync(t, syncReq(coll(c.ChildText(wbxml.AirSyncSyncKey), wbxml.E(wbxml.AirSyncGetChanges), opts))), in)
	if len(adds(c)) != 4 {
		t.Fatalf("initial sync: %v", adds(c))
	}
	key := c.ChildText(wbxml.AirSyncSyncKey)
	commands := func(dam string, cmds ...*wbxml.Element) {
		t.Helper()
		var extra []*wbxml.Element
		if dam != "" {
			extra = append(extra, wbxml.T(wbxml.AirSyncDeletesAsMoves, dam))
		}
		extra = append(extra, wbxml.E(wbxml.AirSyncGetChanges), wbxml.E(wbxml.AirSyncCommands, cmds...))
		c := collection(t, e.sync(t, syncReq(coll(key, extra...))), in)
		if c.ChildText(wbxml.AirSyncStatus) != "1" || c.Has(wbxml.AirSyncResponses) || c.Has(wbxml.AirSyncCommands) {
			t.Fatalf("commands: %v, want Status 1 and nothing else", c)
		}
		key = c.ChildText(wbxml.AirSyncSyncKey)
	}
	change := func(uid int, data ...*wbxml.Element) *wbxml.Element {
		return wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, fmt.Sprintf("%s:%d", in, uid)), wbxml.E(wbxml.AirSyncApplicationData, data...))
	}
	del := func(uid int) *wbxml.Element {
		return wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, fmt.Sprintf("%s:%d", in, uid)))
	}
	flag := wbxml.E(wbxml.EmailFlag, wbxml.T(wbxml.EmailStatus, "2"), wbxml.T(wbxml.EmailFlagType, "Flag for follow up"))
	commands("", del(1), change(2, flag))
	commands("0", del(3))
	if !backend.HasFlag(e.flags(t, in, 2), backend.FlagFlagged) {
		t.Error(`Flag Status 2 did not set \Flagged`)
	}
	uids := func(sid string) backend.UIDSet {
		t.Helper()
		s, err := e.sess.Search(context.Background(), e.folders[sid], time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if got := uids(in); got.Len() != 2 || !got.Contains(2) || !got.Contains(4) {
		t.Errorf("INBOX holds %v, want 2 and 4", got)
	}
	if got := uids(trash); got.Len() != 1 {
		t.Errorf("Trash holds %v, want the one message deleted with DeletesAsMoves", got)
	}
	commands("", change(2, wbxml.E(wbxml.EmailFlag)))
	if backend.HasFlag(e.flags(t, in, 2), backend.FlagFlagged) {
		t.Error(`an empty Flag did not clear \Flagged`)
	}

	// Webmail flags message 4: a Change with the flags only.
	if _, err := e.sess.StoreFlags(context.Background(), e.folders[in], 4, []string{backend.FlagFlagged, backend.FlagSeen}, nil); err != nil {
		t.Fatal(err)
	}
	c = collection(t, e.sync(t, syncReq(coll(key, opts))), in)
	cmds := c.Child(wbxml.AirSyncCommands)
	if cmds == nil || len(cmds.Children) != 1 || cmds.Child(wbxml.AirSyncChange) == nil {
		t.Fatalf("after webmail's flag: %v, want one Change", c)
	}
	ch := cmds.Child(wbxml.AirSyncChange)
	ad := ch.Child(wbxml.AirSyncApplicationData)
	if ch.ChildText(wbxml.AirSyncServerId) != in+":4" || ad.ChildText(wbxml.EmailRead) != "1" ||
		ad.Child(wbxml.EmailFlag).ChildText(wbxml.EmailStatus) != "2" || ad.Has(wbxml.AirSyncBaseBody) || ad.Has(wbxml.EmailSubject) {
		t.Errorf("Change %v, want 4 read and flagged, without the rest of the item", ch)
	}
}

// TestQuirkFolderGoneOnServer: webmail deletes a folder the phone syncs.
// The phone's next Sync of it gets Status 12, GetItemEstimate Status 2,
// MoveItems into it Status 2 (MS-ASCMD 2.2.3.177.17, .6, .9): each sends
// the phone to FolderSync (the digest §3.2), which then deletes it.
func TestQuirkFolderGoneOnServer(t *testing.T) {
	e := newSyncEnv(t)
	in, work := e.ids["INBOX"], e.ids["Work"]
	e.appendDated(t, in, 1, e.now, 0)
	e.appendDated(t, work, 2, e.now, 0)
	keys := map[string]string{}
	for _, id := range []string{in, work} {
		c := collection(t, e.sync(t, syncReq(collReq("0", id, 10))), id)
		c = collection(t, e.sync(t, syncReq(collReq(c.ChildText(wbxml.AirSyncSyncKey), id, 10))), id)
		keys[id] = c.ChildText(wbxml.AirSyncSyncKey)
	}
	if err := e.sess.DeleteFolder(context.Background(), e.folders[work]); err != nil {
		t.Fatal(err)
	}
	if c := collection(t, e.sync(t, syncReq(collReq(keys[work], work, 10))), work); c.ChildText(wbxml.AirSyncStatus) != "12" {
		t.Errorf("Sync of the deleted folder: %v, want Status 12", c)
	}
	if st, _ := e.estimate(t, keys[work], work, "0"); st != "2" {
		t.Errorf("GetItemEstimate of the deleted folder: status %s, want 2", st)
	}
	_, doc := e.send(t, "14.1", "MoveItems", "MoveItemsResponse", wbxml.E(wbxml.MoveMoveItems,
		wbxml.E(wbxml.MoveMove, wbxml.T(wbxml.MoveSrcMsgId, in+":1"), wbxml.T(wbxml.MoveSrcFldId, in), wbxml.T(wbxml.MoveDstFldId, work))))
	if st := doc.Child(wbxml.MoveResponse).ChildText(wbxml.MoveStatus); st != "2" {
		t.Errorf("MoveItems into the deleted folder: status %s, want 2", st)
	}
	_, doc = e.send(t, "14.1", "FolderSync", "FolderSyncResponse",
		wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchySyncKey, "0")))
	for _, a := range doc.Child(wbxml.FolderHierarchyChanges).ChildrenOf(wbxml.FolderHierarchyAdd) {
		if a.ChildText(wbxml.FolderHierarchyServerId) == work {
			t.Errorf("FolderSync still lists the deleted folder: %v", a)
		}
	}
	// The Inbox is untouched: its key still works, with nothing new.
	if doc := e.sync(t, syncReq(collReq(keys[in], in, 10))); doc != nil {
		t.Errorf("Inbox after the folder went: %v", doc)
	}
}

// TestQuirkDoubleInit: iOS may start a folder twice, the second SyncKey 0
// racing the first (the digest §5, Z-Push PR #186). The phone goes on
// with the key of the answer it read last; either way it must get its
// mail, never a Status 3 loop.
func TestQuirkDoubleInit(t *testing.T) {
	e := newSyncEnv(t)
	in := e.ids["INBOX"]
	e.appendRange(t, in, 1, 2, e.now)
	k1 := collection(t, e.sync(t, syncReq(collReq("0", in, 10))), in).ChildText(wbxml.AirSyncSyncKey)
	k2 := collection(t, e.sync(t, syncReq(collReq("0", in, 10))), in).ChildText(wbxml.AirSyncSyncKey)
	for i, k := range []string{k1, k2} {
		c := collection(t, e.sync(t, syncReq(collReq(k, in, 10))), in)
		if c.ChildText(wbxml.AirSyncStatus) != "1" || len(adds(c)) != 2 {
			t.Fatalf("Sync with init %d's key %s: status %s, adds %v", i+1, k, c.ChildText(wbxml.AirSyncStatus), adds(c))
		}
	}
	// Once the phone has synced, SyncKey 0 starts a new chain: a key of
	// the old one is refused.
	k3 := collection(t, e.sync(t, syncReq(collReq("0", in, 10))), in).ChildText(wbxml.AirSyncSyncKey)
	if k3 == k1 {
		t.Fatalf("SyncKey 0 after a sync answered the old key %s", k1)
	}
	if c := collection(t, e.sync(t, syncReq(collReq(k1, in, 10))), in); c.ChildText(wbxml.AirSyncStatus) != "3" {
		t.Errorf("old chain's key after a new SyncKey 0: status %s, want 3", c.ChildText(wbxml.AirSyncStatus))
	}
	// The new chain sends everything again (the phone dropped it all).
	if c := collection(t, e.sync(t, syncReq(collReq(k3, in, 10))), in); len(adds(c)) != 2 {
		t.Errorf("first Sync of the new chain: adds %v, want both messages", adds(c))
	}

	// Two inits at the same time (collectionLocks runs them one after
	// the other): one key.
	work := e.ids["Work"]
	var wg sync.WaitGroup
	raw := mustMarshal(t, syncReq(collReq("0", work, 10)))
	ws := []*httptest.ResponseRecorder{httptest.NewRecorder(), httptest.NewRecorder()}
	for _, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.srv.ServeHTTP(w, post("Sync", "14.1", raw))
		}()
	}
	wg.Wait()
	var got []string
	for _, w := range ws {
		if w.Code != 200 {
			t.Fatalf("concurrent init: HTTP %d", w.Code)
		}
		got = append(got, collection(t, decode(t, w), work).ChildText(wbxml.AirSyncSyncKey))
	}
	if got[0] != got[1] {
		t.Errorf("concurrent inits answered keys %q", got)
	}
}

// TestQuirkMoveRetried: a phone that lost the answer to MoveItems sends
// it again. The message was moved once (IMAP holds it in the destination
// only); the repeat gets Status 1 (the source is gone), and neither
// folder's next Sync sends the message again as a Delete or a second Add.
func TestQuirkMoveRetried(t *testing.T) {
	e := newSyncEnv(t)
	in, work := e.ids["INBOX"], e.ids["Work"]
	e.appendDated(t, in, 1, e.now, 0)
	keys := map[string]string{}
	for _, id := range []string{in, work} {
		c := collection(t, e.sync(t, syncReq(collReq("0", id, 10))), id)
		c = collection(t, e.sync(t, syncReq(collReq(c.ChildText(wbxml.AirSyncSyncKey), id, 10))), id)
		keys[id] = c.ChildText(wbxml.AirSyncSyncKey)
	}
	move := wbxml.E(wbxml.MoveMoveItems, wbxml.E(wbxml.MoveMove,
		wbxml.T(wbxml.MoveSrcMsgId, in+":1"), wbxml.T(wbxml.MoveSrcFldId, in), wbxml.T(wbxml.MoveDstFldId, work)))
	_, doc := e.send(t, "14.1", "MoveItems", "MoveItemsResponse", move)
	r := doc.Child(wbxml.MoveResponse)
	dst := r.ChildText(wbxml.MoveDstMsgId)
	if r.ChildText(wbxml.MoveStatus) != "3" || !strings.HasPrefix(dst, work+":") {
		t.Fatalf("MoveItems: %v", r)
	}
	_, doc = e.send(t, "14.1", "MoveItems", "MoveItemsResponse", move)
	if st := doc.Child(wbxml.MoveResponse).ChildText(wbxml.MoveStatus); st != "1" {
		t.Errorf("MoveItems again: status %s, want 1", st)
	}
	count := func(sid string) int {
		s, err := e.sess.Search(context.Background(), e.folders[sid], time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return s.Len()
	}
	if count(in) != 0 || count(work) != 1 {
		t.Errorf("IMAP: INBOX %d, Work %d messages; want 0, 1", count(in), count(work))
	}
	if doc := e.sync(t, syncReq(collReq(keys[in], in, 10), collReq(keys[work], work, 10))); doc != nil {
		t.Errorf("Sync after the moves: %v, want the empty response", doc)
	}
}

// TestQuirkPingBeforeFirstSync: some iOS builds Ping folders they have
// not synced yet (the digest §3.7, §5; Horde ignores such folders). New
// mail there must not answer the Ping with Status 2 before the folder was
// primed: the phone would Sync, get nothing it asked for, Ping again and
// loop. The Ping waits until its heartbeat (Status 1). Once primed
// (SyncKey 0 answered), the folder's messages are news: Status 2 at once.
func TestQuirkPingBeforeFirstSync(t *testing.T) {
	e := newPingEnv(t, 0)
	ctx := guard(t)
	in := e.ids["INBOX"]
	e.appendDated(t, in, 1, e.now, 0)
	ch := e.startPing(ctx, pingReq("480", in))
	e.waitFor(t, ctx)
	e.appendDated(t, in, 2, e.now, 0) // IDLE reports it
	e.waitFor(t, ctx)                 // checked, waiting again
	select {
	case w := <-ch:
		t.Fatalf("Ping of a folder never synced answered: HTTP %d %x", w.Code, w.Body.Bytes())
	default:
	}
	close(e.expire)
	if doc := await(t, ctx, ch, "Ping"); doc.ChildText(wbxml.PingStatus) != "1" {
		t.Fatalf("at the heartbeat: %v, want Status 1", doc)
	}
	e.sync(t, syncReq(collReq("0", in, 10)))
	doc := await(t, ctx, e.startPing(ctx, nil), "Ping")
	if doc.ChildText(wbxml.PingStatus) != "2" || !slices.Equal(pingFolders(doc), []string{in}) {
		t.Fatalf("Ping after priming: %v, want Status 2 for %s", doc, in)
	}
}

// TestQuirkBase64Phone: a Windows Phone 8 or Outlook build sends every
// command in the base64 query form (the digest §1.3, MS-ASHTTP
// 2.2.1.1.1.1) with a binary DeviceId, no MS-ASProtocolVersion header and
// no User: FolderSync, Sync, GetItemEstimate and an empty Sync all work,
// as one device.
func TestQuirkBase64Phone(t *testing.T) {
	e := newSyncEnv(t)
	in := e.ids["INBOX"]
	e.appendDated(t, in, 1, e.now, 0)
	guid := []byte{0x8e, 0x22, 0x8d, 0xec, 0x38, 0x8f, 0xca, 0xf0, 0x9d, 0x1b, 0x50, 0x93, 0x64, 0xa8, 0x4c, 0xb8}
	send := func(code byte, schema string, body *wbxml.Element) *wbxml.Element {
		t.Helper()
		var raw []byte
		if body != nil {
			raw = mustMarshal(t, body)
		}
		r := post("Sync", "", raw)
		r.URL.RawQuery = b64Query{version: 141, code: code, locale: 0x409, deviceID: guid, deviceType: "WP8"}.String()
		r.Header.Del("MS-ASProtocolVersion")
		r.Header.Set("User-Agent", "MSFT-WP/8.10.14219")
		w := e.do(r)
		if w.Code != 200 {
			t.Fatalf("command %d: HTTP %d", code, w.Code)
		}
		if w.Body.Len() == 0 {
			return nil
		}
		doc := decode(t, w)
		checkSchema(t, schema, doc)
		return doc
	}
	doc := send(9, "FolderSyncResponse", wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchySyncKey, "0")))
	if doc.ChildText(wbxml.FolderHierarchyStatus) != "1" {
		t.Fatalf("FolderSync: %v", doc)
	}
	var inbox string
	for _, a := range doc.Child(wbxml.FolderHierarchyChanges).ChildrenOf(wbxml.FolderHierarchyAdd) {
		if a.ChildText(wbxml.FolderHierarchyType) == "2" {
			inbox = a.ChildText(wbxml.FolderHierarchyServerId)
		}
	}
	c := collection(t, send(0, "SyncResponse", syncReq(collReq("0", inbox, 10))), inbox)
	key := c.ChildText(wbxml.AirSyncSyncKey)
	doc = send(14, "GetItemEstimateResponse", wbxml.E(wbxml.GetItemEstimateGetItemEstimate,
		wbxml.E(wbxml.GetItemEstimateCollections, wbxml.E(wbxml.GetItemEstimateCollection,
			wbxml.T(wbxml.AirSyncSyncKey, key), wbxml.T(wbxml.GetItemEstimateCollectionId, inbox),
			wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, "0"))))))
	if n := doc.Child(wbxml.GetItemEstimateResponse).Child(wbxml.GetItemEstimateCollection).ChildText(wbxml.GetItemEstimateEstimate); n != "1" {
		t.Errorf("GetItemEstimate: %v", doc)
	}
	c = collection(t, send(0, "SyncResponse", syncReq(collReq(key, inbox, 10))), inbox)
	if got := adds(c); len(got) != 1 {
		t.Fatalf("Sync: adds %v", got)
	}
	e.appendDated(t, in, 2, e.now, 0)
	if got := adds(collection(t, send(0, "SyncResponse", nil), inbox)); len(got) != 1 || got[0] != inbox+":2" {
		t.Errorf("empty Sync: adds %v", got)
	}
	// All of it was one device, under the hex form of its id.
	d, err := e.store.GetDevice(context.Background(), testUser, "8e228dec388fcaf09d1b509364a84cb8")
	if err != nil || d.Type != "WP8" {
		t.Errorf("device record: %+v, %v", d, err)
	}
}

// TestQuirkBodyPreferences: the body requests phones make (the digest
// §4.1 "Which body to send"): iOS asks for MIME with MIMESupport 2 (S/MIME
// and full originals), AOSP for truncated HTML, 14.0+ clients add a
// Preview; several BodyPreferences take the first the server can make
// (RTF is not one). A Sync Fetch answers with the same body choice, and
// with Status 8 for a message that is gone.
func TestQuirkBodyPreferences(t *testing.T) {
	e := newSyncEnv(t)
	in := e.ids["INBOX"]
	uid := e.appendDated(t, in, 1, e.now, 300)
	pref := func(typ, trunc string, extra ...*wbxml.Element) *wbxml.Element {
		bp := wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, typ))
		if trunc != "" {
			bp.Add(wbxml.T(wbxml.AirSyncBaseTruncationSize, trunc))
		}
		return bp.Add(extra...)
	}
	for _, tc := range []struct {
		name    string
		options *wbxml.Element
		check   func(b *wbxml.Element) string
	}{
		{"iOS MIME", wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncMIMESupport, "2"), pref("4", "")),
			func(b *wbxml.Element) string {
				if b.ChildText(wbxml.AirSyncBaseType) != "4" || !strings.Contains(b.ChildText(wbxml.AirSyncBaseData), "Subject: message 1\r\n") ||
					b.ChildText(wbxml.AirSyncBaseTruncated) == "1" {
					return "want the whole MIME message (Type 4)"
				}
				return ""
			}},
		{"AOSP truncated HTML with Preview", wbxml.E(wbxml.AirSyncOptions, pref("2", "100", wbxml.T(wbxml.AirSyncBasePreview, "50"))),
			func(b *wbxml.Element) string {
				data, pv := b.ChildText(wbxml.AirSyncBaseData), b.ChildText(wbxml.AirSyncBasePreview)
				if b.ChildText(wbxml.AirSyncBaseType) != "2" || b.ChildText(wbxml.AirSyncBaseTruncated) != "1" || len(data) > 100 ||
					pv == "" || len(pv) > 50 || strings.Contains(pv, "<") {
					return "want HTML cut at 100 bytes, Truncated 1, a text Preview of at most 50"
				}
				return ""
			}},
		{"RTF first, then plain", wbxml.E(wbxml.AirSyncOptions, pref("3", "50"), pref("1", "50")),
			func(b *wbxml.Element) string {
				if b.ChildText(wbxml.AirSyncBaseType) != "1" || b.ChildText(wbxml.AirSyncBaseTruncated) != "1" {
					return "want truncated plain text (Type 1)"
				}
				return ""
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := collection(t, e.sync(t, syncReq(bareColl("0", in, tc.options))), in)
			c = collection(t, e.sync(t, syncReq(bareColl(c.ChildText(wbxml.AirSyncSyncKey), in))), in)
			ad := addsByID(c)[mailsync.ServerID(in, uid)]
			if ad == nil {
				t.Fatalf("no Add: %v", adds(c))
			}
			if msg := tc.check(ad.Child(wbxml.AirSyncBaseBody)); msg != "" {
				t.Errorf("Add body %v: %s", ad.Child(wbxml.AirSyncBaseBody), msg)
			}
			fetch := wbxml.E(wbxml.AirSyncCommands,
				wbxml.E(wbxml.AirSyncFetch, wbxml.T(wbxml.AirSyncServerId, mailsync.ServerID(in, uid))),
				wbxml.E(wbxml.AirSyncFetch, wbxml.T(wbxml.AirSyncServerId, mailsync.ServerID(in, uid+100))))
			c = collection(t, e.sync(t, syncReq(bareColl(c.ChildText(wbxml.AirSyncSyncKey), in, wbxml.E(wbxml.AirSyncGetChanges), fetch))), in)
			fs := c.Child(wbxml.AirSyncResponses).ChildrenOf(wbxml.AirSyncFetch)
			if len(fs) != 2 || fs[0].ChildText(wbxml.AirSyncStatus) != "1" || fs[1].ChildText(wbxml.AirSyncStatus) != "8" {
				t.Fatalf("Fetch responses %v, want Status 1 and 8", fs)
			}
			if msg := tc.check(fs[0].Child(wbxml.AirSyncApplicationData).Child(wbxml.AirSyncBaseBody)); msg != "" {
				t.Errorf("Fetch body: %s", msg)
			}
		})
	}
}

// TestQuirkLostResponse: the phone's connection drops after the server
// answered, and it sends the same request again with the same SyncKey
// (the digest §3.4 "SyncKey discipline", §5 "idempotent under retry").
// It gets the same answer: the same new items, its Delete and Change not
// run twice (no Status 8, one copy in Trash), and the key it then uses
// goes on from there.
func TestQuirkLostResponse(t *testing.T) {
	e := newSyncEnv(t)
	in, trash := e.ids["INBOX"], e.ids["Trash"]
	e.appendRange(t, in, 1, 3, e.now)
	c := collection(t, e.sync(t, syncReq(collReq("0", in, 10))), in)
	c = collection(t, e.sync(t, syncReq(collReq(c.ChildText(wbxml.AirSyncSyncKey), in, 10))), in)
	key := c.ChildText(wbxml.AirSyncSyncKey)
	e.appendDated(t, in, 4, e.now, 0)
	req := syncReq(collReq(key, in, 10, wbxml.E(wbxml.AirSyncCommands,
		wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, in+":1")),
		wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, in+":2"),
			wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1"))))))
	first := e.sync(t, req)
	second := e.sync(t, req)
	// The new key may differ (the first answer's state is dropped); the
	// rest is the same, byte for byte.
	k1, k2 := collection(t, first, in).Child(wbxml.AirSyncSyncKey), collection(t, second, in).Child(wbxml.AirSyncSyncKey)
	k2Text := k2.Text
	k1.Text, k2.Text = "", ""
	a, b := mustMarshal(t, first), mustMarshal(t, second)
	k2.Text = k2Text
	if string(a) != string(b) {
		var x, y strings.Builder
		wbxml.ToXML(&x, first)
		wbxml.ToXML(&y, second)
		t.Fatalf("the repeated request got another answer:\n%s\nthen\n%s", x.String(), y.String())
	}
	c = collection(t, second, in)
	if got := adds(c); len(got) != 1 || got[0] != in+":4" || c.Has(wbxml.AirSyncResponses) {
		t.Fatalf("answer: adds %v, responses %v", got, c.Child(wbxml.AirSyncResponses))
	}
	s, err := e.sess.Search(context.Background(), e.folders[trash], time.Time{})
	if err != nil || s.Len() != 1 {
		t.Errorf("Trash holds %v (%v), want one message", s, err)
	}
	if !backend.HasFlag(e.flags(t, in, 2), backend.FlagSeen) {
		t.Error(`2 is not \Seen`)
	}
	if doc := e.sync(t, syncReq(collReq(c.ChildText(wbxml.AirSyncSyncKey), in, 10))); doc != nil {
		t.Errorf("next Sync: %v, want the empty response", doc)
	}
}

// TestQuirkSMSOptions: Android clients on 14.0+ send a second Options
// block with Class SMS in the mail collection (MS-ASCMD 2.2.3.125.6). The
// mail items follow the other block, also when later Syncs leave both
// out.
func TestQuirkSMSOptions(t *testing.T) {
	e := newSyncEnv(t)
	in := e.ids["INBOX"]
	e.appendDated(t, in, 1, e.now.AddDate(0, 0, -10), 300)
	e.appendDated(t, in, 2, e.now, 300)
	sms := wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncClass, "SMS"), wbxml.T(wbxml.AirSyncFilterType, "0"),
		wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "1")))
	mail := wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, "3"),
		wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "2"), wbxml.T(wbxml.AirSyncBaseTruncationSize, "50")))
	key := collection(t, e.sync(t, syncReq(bareColl("0", in, sms, mail))), in).ChildText(wbxml.AirSyncSyncKey)
	for round := 1; round <= 2; round++ {
		c := collection(t, e.sync(t, syncReq(bareColl(key, in))), in)
		key = c.ChildText(wbxml.AirSyncSyncKey)
		id := fmt.Sprintf("%s:%d", in, round+1)
		ad := addsByID(c)[id]
		if len(adds(c)) != 1 || ad == nil {
			t.Fatalf("round %d: adds %v, want %s only (FilterType 3)", round, adds(c), id)
		}
		if b := ad.Child(wbxml.AirSyncBaseBody); b.ChildText(wbxml.AirSyncBaseType) != "2" || b.ChildText(wbxml.AirSyncBaseTruncated) != "1" {
			t.Errorf("round %d: body %v, want HTML cut at 50", round, b)
		}
		e.appendDated(t, in, round+2, e.now, 300)
	}
}

// TestQuirkChangeOfGoneMessage: the user reads and deletes on the phone
// messages that the desktop has already expunged, before the phone heard
// of it (MS-ASCMD 2.2.3.177.17: Status 8, object not found). The phone
// gets Status 8 for its Change and its Delete, and a Delete for the
// message it changed; nothing else in IMAP is touched.
func TestQuirkChangeOfGoneMessage(t *testing.T) {
	e := newSyncEnv(t)
	in, trash := e.ids["INBOX"], e.ids["Trash"]
	e.appendRange(t, in, 1, 3, e.now)
	c := collection(t, e.sync(t, syncReq(collReq("0", in, 10))), in)
	c = collection(t, e.sync(t, syncReq(collReq(c.ChildText(wbxml.AirSyncSyncKey), in, 10))), in)
	key := c.ChildText(wbxml.AirSyncSyncKey)
	for _, uid := range []backend.UID{1, 2} {
		if _, err := e.sess.Delete(context.Background(), e.folders[in], uid, false); err != nil {
			t.Fatal(err)
		}
	}
	c = collection(t, e.sync(t, syncReq(collReq(key, in, 10, wbxml.E(wbxml.AirSyncCommands,
		wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, in+":1"),
			wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1"))),
		wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, in+":2")))))), in)
	var responses, deletes []string
	if rs := c.Child(wbxml.AirSyncResponses); rs != nil {
		for _, r := range rs.Children {
			responses = append(responses, fmt.Sprintf("%s %s=%s", tagName(r.Tag), r.ChildText(wbxml.AirSyncServerId), r.ChildText(wbxml.AirSyncStatus)))
		}
	}
	if cmds := c.Child(wbxml.AirSyncCommands); cmds != nil {
		for _, d := range cmds.ChildrenOf(wbxml.AirSyncDelete) {
			deletes = append(deletes, d.ChildText(wbxml.AirSyncServerId))
		}
	}
	if want := []string{"Change " + in + ":1=8", "Delete " + in + ":2=8"}; !slices.Equal(responses, want) {
		t.Errorf("responses %v, want %v", responses, want)
	}
	if !slices.Contains(deletes, in+":1") {
		t.Errorf("server Deletes %v, want %s:1 (gone from IMAP)", deletes, in)
	}
	s, err := e.sess.Search(context.Background(), e.folders[trash], time.Time{})
	if err != nil || s.Len() != 0 {
		t.Errorf("Trash holds %v (%v), want nothing", s, err)
	}
	if f := e.flags(t, in, 3); backend.HasFlag(f, backend.FlagSeen) {
		t.Errorf("3 has flags %v", f)
	}
}

// tagName is the element name of a Sync response command.
func tagName(tag wbxml.Tag) string {
	switch tag {
	case wbxml.AirSyncChange:
		return "Change"
	case wbxml.AirSyncDelete:
		return "Delete"
	case wbxml.AirSyncFetch:
		return "Fetch"
	case wbxml.AirSyncAdd:
		return "Add"
	}
	return fmt.Sprint(tag)
}

// TestQuirkIOS161: iOS negotiates the highest version offered, 16.1 (the
// digest §5). Its usual round, in 16.1: FolderSync, GetItemEstimate,
// Sync of the Inbox (flags, keywords, a reply) and of Drafts (IsDraft),
// ItemOperations Fetch of a whole item; each answer valid for the XSDs
// and carrying the 16.x elements.
func TestQuirkIOS161(t *testing.T) {
	e := newSyncEnv(t)
	in := e.ids["INBOX"]
	drafts := e.ids["Drafts"]
	ctx := context.Background()
	uid := e.appendDated(t, in, 1, e.now, 50)
	if _, err := e.sess.StoreFlags(ctx, e.folders[in], uid, []string{backend.FlagFlagged, backend.FlagAnswered, "Work"}, nil); err != nil {
		t.Fatal(err)
	}
	draft := e.appendDated(t, drafts, 2, e.now, 10)
	_, doc := e.send(t, "16.1", "FolderSync", "FolderSyncResponse",
		wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchySyncKey, "0")))
	if doc.ChildText(wbxml.FolderHierarchyStatus) != "1" {
		t.Fatalf("FolderSync: %v", doc)
	}
	opts := wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, "3"),
		wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "2"), wbxml.T(wbxml.AirSyncBaseTruncationSize, "32768"),
			wbxml.T(wbxml.AirSyncBasePreview, "255")))
	keys := map[string]string{}
	_, doc = e.send(t, "16.1", "Sync", "SyncResponse", syncReq(bareColl("0", in, opts), bareColl("0", drafts, opts)))
	for _, id := range []string{in, drafts} {
		keys[id] = collection(t, doc, id).ChildText(wbxml.AirSyncSyncKey)
	}
	_, doc = e.send(t, "16.1", "GetItemEstimate", "GetItemEstimateResponse", wbxml.E(wbxml.GetItemEstimateGetItemEstimate,
		wbxml.E(wbxml.GetItemEstimateCollections, wbxml.E(wbxml.GetItemEstimateCollection,
			wbxml.T(wbxml.AirSyncSyncKey, keys[in]), wbxml.T(wbxml.GetItemEstimateCollectionId, in),
			wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, "3"))))))
	if n := doc.Child(wbxml.GetItemEstimateResponse).Child(wbxml.GetItemEstimateCollection).ChildText(wbxml.GetItemEstimateEstimate); n != "1" {
		t.Errorf("GetItemEstimate: %s, want 1", n)
	}
	_, doc = e.send(t, "16.1", "Sync", "SyncResponse", syncReq(bareColl(keys[in], in), bareColl(keys[drafts], drafts)))
	ad := addsByID(collection(t, doc, in))[mailsync.ServerID(in, uid)]
	if ad == nil {
		t.Fatalf("no Add for the Inbox message: %v", doc)
	}
	if ad.Child(wbxml.EmailFlag).ChildText(wbxml.EmailStatus) != "2" || ad.ChildText(wbxml.Email2LastVerbExecuted) != "1" ||
		ad.Child(wbxml.EmailCategories).ChildText(wbxml.EmailCategory) != "Work" || ad.ChildText(wbxml.Email2IsDraft) != "0" ||
		ad.Child(wbxml.AirSyncBaseBody).ChildText(wbxml.AirSyncBasePreview) == "" {
		var sb strings.Builder
		wbxml.ToXML(&sb, ad)
		t.Errorf("Inbox item lacks 16.1 fields:\n%s", sb.String())
	}
	dd := addsByID(collection(t, doc, drafts))[mailsync.ServerID(drafts, draft)]
	if dd == nil || dd.ChildText(wbxml.Email2IsDraft) != "1" {
		t.Errorf("Drafts item: %v, want IsDraft 1", dd)
	}
	_, doc = e.send(t, "16.1", "ItemOperations", "ItemOperationsResponse", wbxml.E(wbxml.ItemOperationsItemOperations,
		wbxml.E(wbxml.ItemOperationsFetch, wbxml.T(wbxml.ItemOperationsStore, "Mailbox"),
			wbxml.T(wbxml.AirSyncCollectionId, in), wbxml.T(wbxml.AirSyncServerId, mailsync.ServerID(in, uid)),
			wbxml.E(wbxml.ItemOperationsOptions, wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "2"))))))
	f := doc.Child(wbxml.ItemOperationsResponse).Child(wbxml.ItemOperationsFetch)
	if f.ChildText(wbxml.ItemOperationsStatus) != "1" || f.Child(wbxml.ItemOperationsProperties).ChildText(wbxml.Email2IsDraft) != "0" {
		t.Errorf("ItemOperations Fetch: %v", f)
	}
}

// TestQuirkFilterTypeChange: the user changes "Mail days to sync" and the
// phone sends new Options with its current key (the digest §3.4: items
// that leave the window go as SoftDelete). New Options replace the sticky
// ones (MS-ASCMD 2.2.3.125.6): later Syncs without Options keep the new
// window, and widening it again brings the old message back.
func TestQuirkFilterTypeChange(t *testing.T) {
	e := newSyncEnv(t)
	in := e.ids["INBOX"]
	old := e.appendDated(t, in, 1, e.now.AddDate(0, 0, -10), 0)
	e.appendDated(t, in, 2, e.now, 0)
	filter := func(ft string) *wbxml.Element {
		return wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, ft),
			wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "1")))
	}
	key := collection(t, e.sync(t, syncReq(bareColl("0", in, filter("0")))), in).ChildText(wbxml.AirSyncSyncKey)
	step := func(what string, opts *wbxml.Element) *wbxml.Element {
		t.Helper()
		var extra []*wbxml.Element
		if opts != nil {
			extra = append(extra, opts)
		}
		doc := e.sync(t, syncReq(bareColl(key, in, extra...)))
		if doc == nil {
			return nil
		}
		c := collection(t, doc, in)
		if c.ChildText(wbxml.AirSyncStatus) != "1" {
			t.Fatalf("%s: %v", what, c)
		}
		key = c.ChildText(wbxml.AirSyncSyncKey)
		return c
	}
	if c := step("all", nil); len(adds(c)) != 2 {
		t.Fatalf("FilterType 0: adds %v", adds(c))
	}
	c := step("one week", filter("3"))
	var soft []string
	if cmds := c.Child(wbxml.AirSyncCommands); cmds != nil {
		for _, d := range cmds.ChildrenOf(wbxml.AirSyncSoftDelete) {
			soft = append(soft, d.ChildText(wbxml.AirSyncServerId))
		}
	}
	if !slices.Equal(soft, []string{mailsync.ServerID(in, old)}) || len(adds(c)) != 0 {
		t.Fatalf("FilterType 3: SoftDeletes %v, adds %v; want only the old message soft-deleted", soft, adds(c))
	}
	if c := step("one week, sticky", nil); c != nil {
		t.Fatalf("FilterType 3 kept: %v, want the empty response", c)
	}
	if c := step("all again", filter("0")); !slices.Equal(adds(c), []string{mailsync.ServerID(in, old)}) {
		t.Fatalf("FilterType 0 again: adds %v, want the old message", adds(c))
	}
	if c := step("all, sticky", nil); c != nil {
		t.Fatalf("FilterType 0 kept: %v, want the empty response", c)
	}
}

// movePauseStore is a mail store whose sessions stop after a UID MOVE
// until the test lets them go on (a MoveItems that moved the message and
// has not yet recorded it in the sync states), and report each scan of
// one folder.
type movePauseStore struct {
	backend.Store
	watch   backend.FolderID
	moved   chan struct{} // told after Move
	proceed chan struct{} // closed to let Move return
	scanned chan struct{} // told (if there is room) after Changes of watch
}

func (s *movePauseStore) Open(ctx context.Context, user, password string) (backend.Session, error) {
	sess, err := s.Store.Open(ctx, user, password)
	if err != nil {
		return nil, err
	}
	return &movePauseSession{Session: sess, s: s}, nil
}

type movePauseSession struct {
	backend.Session
	s *movePauseStore
}

func (p *movePauseSession) Move(ctx context.Context, id backend.FolderID, uid backend.UID, dst backend.FolderID) (backend.UID, error) {
	n, err := p.Session.Move(ctx, id, uid, dst)
	p.s.moved <- struct{}{}
	<-p.s.proceed
	return n, err
}

func (p *movePauseSession) Changes(ctx context.Context, id backend.FolderID, since *backend.FolderState, window time.Time) (*backend.ChangeSet, error) {
	cs, err := p.Session.Changes(ctx, id, since, window)
	if id == p.s.watch {
		select {
		case p.s.scanned <- struct{}{}:
		default:
		}
	}
	return cs, err
}

// TestQuirkMoveDuringSync: iOS runs commands in parallel; a Sync of the
// destination folder arrives while a MoveItems into it has moved the
// message in IMAP and not yet recorded the move. The Sync must not send
// the moved message as an Add: the MoveItems answer names it as the
// phone's already (DstMsgId), and the phone would show it twice (the
// digest §3.6). Either the Sync runs before the move is recorded without
// the message, or after it.
func TestQuirkMoveDuringSync(t *testing.T) {
	e := newSyncEnv(t)
	ctx := guard(t)
	in, work := e.ids["INBOX"], e.ids["Work"]
	e.appendDated(t, in, 1, e.now, 0)
	keys := map[string]string{}
	for _, id := range []string{in, work} {
		c := collection(t, e.sync(t, syncReq(collReq("0", id, 10))), id)
		c = collection(t, e.sync(t, syncReq(collReq(c.ChildText(wbxml.AirSyncSyncKey), id, 10))), id)
		keys[id] = c.ChildText(wbxml.AirSyncSyncKey)
	}
	ps := &movePauseStore{Store: e.srv.cfg.Mail, watch: e.folders[work],
		moved: make(chan struct{}), proceed: make(chan struct{}), scanned: make(chan struct{}, 1)}
	e.srv.cfg.Mail = ps
	run := func(cmd string, body *wbxml.Element) <-chan *httptest.ResponseRecorder {
		out := make(chan *httptest.ResponseRecorder, 1)
		raw := mustMarshal(t, body)
		go func() {
			w := httptest.NewRecorder()
			e.srv.ServeHTTP(w, post(cmd, "14.1", raw).WithContext(ctx))
			out <- w
		}()
		return out
	}
	move := run("MoveItems", wbxml.E(wbxml.MoveMoveItems, wbxml.E(wbxml.MoveMove,
		wbxml.T(wbxml.MoveSrcMsgId, in+":1"), wbxml.T(wbxml.MoveSrcFldId, in), wbxml.T(wbxml.MoveDstFldId, work))))
	select {
	case <-ps.moved:
	case <-ctx.Done():
		t.Fatal("the MoveItems never moved")
	}
	sync := run("Sync", syncReq(collReq(keys[work], work, 10)))
	// The Sync either scans Work now (and may see the moved message) or
	// waits for the move to be recorded.
	for waiting := false; !waiting; {
		select {
		case <-ps.scanned:
			waiting = true
		case <-ctx.Done():
			t.Fatal("the Sync neither scanned nor waited")
		case <-time.After(5 * time.Millisecond):
			waiting = lockWaiters(&e.srv.colls, collectionKey{testUser, "appldev1", work}) > 0
		}
	}
	close(ps.proceed)
	mv := await(t, ctx, move, "MoveItems")
	dst := mv.Child(wbxml.MoveResponse).ChildText(wbxml.MoveDstMsgId)
	if mv.Child(wbxml.MoveResponse).ChildText(wbxml.MoveStatus) != "3" || dst == "" {
		t.Fatalf("MoveItems: %v", mv)
	}
	if doc := await(t, ctx, sync, "Sync"); doc != nil {
		c := collection(t, doc, work)
		if slices.Contains(adds(c), dst) {
			t.Fatalf("the Sync of Work sent %s as an Add, and MoveItems gave it as DstMsgId", dst)
		}
		keys[work] = c.ChildText(wbxml.AirSyncSyncKey)
	}
	if doc := e.sync(t, syncReq(collReq(keys[work], work, 10))); doc != nil {
		t.Errorf("next Sync of Work: %v, want the empty response", doc)
	}
}

// lockWaiters is how many commands wait for a collection's lock.
func lockWaiters(l *collectionLocks, k collectionKey) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.m[k]; c != nil {
		return c.refs - len(c.held)
	}
	return 0
}

// TestQuirkFolderRenamedInWebmail: webmail renames a folder the phone
// syncs. The phone's next Sync of it gets Status 12 (not 3, which would
// make it download the folder again); FolderSync then sends an Update
// with the same ServerId and the new name, and the phone's old SyncKey
// goes on in the renamed folder with nothing to send again.
func TestQuirkFolderRenamedInWebmail(t *testing.T) {
	e := newSyncEnv(t)
	work := e.ids["Work"]
	e.appendRange(t, work, 1, 2, e.now)
	c := collection(t, e.sync(t, syncReq(collReq("0", work, 10))), work)
	c = collection(t, e.sync(t, syncReq(collReq(c.ChildText(wbxml.AirSyncSyncKey), work, 10))), work)
	key := c.ChildText(wbxml.AirSyncSyncKey)
	if len(adds(c)) != 2 {
		t.Fatalf("initial sync: %v", adds(c))
	}
	_, doc := e.send(t, "14.1", "FolderSync", "FolderSyncResponse",
		wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchySyncKey, "0")))
	hkey := doc.ChildText(wbxml.FolderHierarchySyncKey)
	if _, err := e.sess.RenameFolder(context.Background(), e.folders[work], "", "Projects"); err != nil {
		t.Fatal(err)
	}
	if c := collection(t, e.sync(t, syncReq(collReq(key, work, 10))), work); c.ChildText(wbxml.AirSyncStatus) != "12" {
		t.Fatalf("Sync of the renamed folder before FolderSync: %v, want Status 12", c)
	}
	_, doc = e.send(t, "14.1", "FolderSync", "FolderSyncResponse",
		wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchySyncKey, hkey)))
	ch := doc.Child(wbxml.FolderHierarchyChanges)
	up := ch.Child(wbxml.FolderHierarchyUpdate)
	if ch.ChildText(wbxml.FolderHierarchyCount) != "1" || up == nil || up.ChildText(wbxml.FolderHierarchyServerId) != work ||
		up.ChildText(wbxml.FolderHierarchyDisplayName) != "Projects" {
		var sb strings.Builder
		wbxml.ToXML(&sb, doc)
		t.Fatalf("FolderSync after the rename, want one Update of %s:\n%s", work, sb.String())
	}
	if doc := e.sync(t, syncReq(collReq(key, work, 10))); doc != nil {
		t.Errorf("Sync of the renamed folder with the old key: %v, want the empty response", doc)
	}
}

// TestQuirkFolderRecreated: webmail deletes a folder and makes a new one
// of the same name (a new UIDVALIDITY: the UIDs the phone holds name
// other messages now). The phone's Sync with its old key gets Status 3
// (the digest §3.4 "IMAP mapping"); its fresh start (SyncKey 0, then its
// key) gets Status 12, not Status 3 again, which would loop: the
// device's folder list still names the old folder. FolderSync then
// replaces it (Delete, Add under a new ServerId), and the new collection
// syncs the new folder's messages.
func TestQuirkFolderRecreated(t *testing.T) {
	e := newSyncEnv(t)
	ctx := context.Background()
	work := e.ids["Work"]
	e.appendDated(t, work, 1, e.now, 0)
	_, doc := e.send(t, "14.1", "FolderSync", "FolderSyncResponse",
		wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchySyncKey, "0")))
	hkey := doc.ChildText(wbxml.FolderHierarchySyncKey)
	c := collection(t, e.sync(t, syncReq(collReq("0", work, 10))), work)
	c = collection(t, e.sync(t, syncReq(collReq(c.ChildText(wbxml.AirSyncSyncKey), work, 10))), work)
	key := c.ChildText(wbxml.AirSyncSyncKey)
	if err := e.sess.DeleteFolder(ctx, e.folders[work]); err != nil {
		t.Fatal(err)
	}
	f, err := e.sess.CreateFolder(ctx, "", "Work")
	if err != nil {
		t.Fatal(err)
	}
	e.folders[work] = f.ID
	e.appendDated(t, work, 2, e.now, 0)
	e.appendDated(t, work, 3, e.now, 0)
	status := func(c *wbxml.Element) string { return c.ChildText(wbxml.AirSyncStatus) }
	c = collection(t, e.sync(t, syncReq(collReq(key, work, 10))), work)
	if status(c) != "3" || c.ChildText(wbxml.AirSyncSyncKey) != "0" {
		t.Fatalf("old key in the new folder: %v, want Status 3 and SyncKey 0", c)
	}
	c = collection(t, e.sync(t, syncReq(collReq("0", work, 10))), work)
	for i := 1; i <= 2; i++ {
		if c = collection(t, e.sync(t, syncReq(collReq(c.ChildText(wbxml.AirSyncSyncKey), work, 10))), work); status(c) != "12" {
			t.Fatalf("fresh start, Sync %d: status %s, want 12 (FolderSync needed)", i, status(c))
		}
	}
	_, doc = e.send(t, "14.1", "FolderSync", "FolderSyncResponse",
		wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchySyncKey, hkey)))
	ch := doc.Child(wbxml.FolderHierarchyChanges)
	var added string
	for _, a := range ch.ChildrenOf(wbxml.FolderHierarchyAdd) {
		if a.ChildText(wbxml.FolderHierarchyDisplayName) == "Work" {
			added = a.ChildText(wbxml.FolderHierarchyServerId)
		}
	}
	del := ch.Child(wbxml.FolderHierarchyDelete)
	if added == "" || added == work || del == nil || del.ChildText(wbxml.FolderHierarchyServerId) != work {
		var sb strings.Builder
		wbxml.ToXML(&sb, doc)
		t.Fatalf("FolderSync, want a Delete of %s and an Add of Work:\n%s", work, sb.String())
	}
	c = collection(t, e.sync(t, syncReq(collReq("0", added, 10))), added)
	c = collection(t, e.sync(t, syncReq(collReq(c.ChildText(wbxml.AirSyncSyncKey), added, 10))), added)
	if status(c) != "1" || len(adds(c)) != 2 {
		t.Fatalf("the new collection: status %s adds %v, want the two new messages", status(c), adds(c))
	}
}

// TestQuirkFilterTypeMonths: some mail clients offer "3 months" and "6
// months" and send FilterType 6 and 7, which MS-ASCMD 2.2.3.68.2 lists
// for calendars only (Firefox OS Mail did; Z-Push honours them for mail).
// They are windows of 90 and 180 days for Sync and GetItemEstimate, not
// "all", which would download what the user chose to leave out.
func TestQuirkFilterTypeMonths(t *testing.T) {
	e := newSyncEnv(t)
	in := e.ids["INBOX"]
	e.appendDated(t, in, 1, e.now.AddDate(0, 0, -200), 0)
	e.appendDated(t, in, 2, e.now.AddDate(0, 0, -120), 0)
	e.appendDated(t, in, 3, e.now.AddDate(0, 0, -40), 0)
	for _, tc := range []struct {
		filter string
		want   int
	}{{"6", 1}, {"7", 2}, {"0", 3}} {
		opts := wbxml.E(wbxml.AirSyncOptions, wbxml.T(wbxml.AirSyncFilterType, tc.filter))
		key := collection(t, e.sync(t, syncReq(bareColl("0", in, opts))), in).ChildText(wbxml.AirSyncSyncKey)
		if st, n := e.estimate(t, key, in, tc.filter); st != "1" || n != fmt.Sprint(tc.want) {
			t.Errorf("FilterType %s: GetItemEstimate status %s estimate %s, want %d", tc.filter, st, n, tc.want)
		}
		c := collection(t, e.sync(t, syncReq(bareColl(key, in, opts))), in)
		if got := adds(c); len(got) != tc.want {
			t.Errorf("FilterType %s: adds %v, want %d", tc.filter, got, tc.want)
		}
	}
}

// TestQuirkMIMETruncation: a phone that asks for MIME (MIMESupport 2)
// without a BodyPreference of Type 4 cuts it with airsync:MIMETruncation
// (MS-ASCMD 2.2.3.111): 1 at 4,096 characters, 0 sends no data, 8 all of
// it; a Type 4 BodyPreference with a TruncationSize wins over it.
func TestQuirkMIMETruncation(t *testing.T) {
	e := newSyncEnv(t)
	in := e.ids["INBOX"]
	raw := "From: s1@example.com\r\nTo: jane@example.com\r\nSubject: long\r\nMessage-ID: <long1@example.com>\r\n" +
		"Date: " + e.now.Format(time.RFC1123Z) + "\r\n\r\n" + strings.Repeat("0123456789 abcdefghijklmnopqrstuvwxyz\r\n", 160)
	uid, err := e.sess.Append(context.Background(), e.folders[in], backend.AppendMessage{Size: int64(len(raw)), Body: strings.NewReader(raw), Date: e.now})
	if err != nil {
		t.Fatal(err)
	}
	size := strconv.Itoa(len(raw))
	for _, tc := range []struct {
		name      string
		options   []*wbxml.Element
		data      string // the Data element's text; "-" for none
		truncated string
	}{
		{"1: 4,096", []*wbxml.Element{wbxml.T(wbxml.AirSyncMIMETruncation, "1")}, raw[:4096], "1"},
		{"0: no data", []*wbxml.Element{wbxml.T(wbxml.AirSyncMIMETruncation, "0")}, "-", "1"},
		{"8: whole", []*wbxml.Element{wbxml.T(wbxml.AirSyncMIMETruncation, "8")}, raw, "0"},
		{"none: whole", nil, raw, "0"},
		{"BodyPreference wins", []*wbxml.Element{wbxml.T(wbxml.AirSyncMIMETruncation, "1"),
			wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "4"), wbxml.T(wbxml.AirSyncBaseTruncationSize, "100"))}, raw[:100], "1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := wbxml.E(wbxml.AirSyncOptions, append([]*wbxml.Element{wbxml.T(wbxml.AirSyncMIMESupport, "2")}, tc.options...)...)
			c := collection(t, e.sync(t, syncReq(bareColl("0", in, opts))), in)
			c = collection(t, e.sync(t, syncReq(bareColl(c.ChildText(wbxml.AirSyncSyncKey), in))), in)
			ad := addsByID(c)[mailsync.ServerID(in, uid)]
			if ad == nil {
				t.Fatalf("no Add: %v", adds(c))
			}
			b := ad.Child(wbxml.AirSyncBaseBody)
			data := "-"
			if d := b.Child(wbxml.AirSyncBaseData); d != nil {
				data = d.Text
			}
			if b.ChildText(wbxml.AirSyncBaseType) != "4" || data != tc.data || b.ChildText(wbxml.AirSyncBaseTruncated) != tc.truncated ||
				b.ChildText(wbxml.AirSyncBaseEstimatedDataSize) != size {
				t.Errorf("body Type %s, Truncated %s, EstimatedDataSize %s, %d bytes of data; want Type 4, Truncated %s, %s, %d bytes",
					b.ChildText(wbxml.AirSyncBaseType), b.ChildText(wbxml.AirSyncBaseTruncated), b.ChildText(wbxml.AirSyncBaseEstimatedDataSize), len(data),
					tc.truncated, size, len(tc.data))
			}
		})
	}
}
