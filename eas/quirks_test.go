package eas

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
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
	if _, err := wbxmltest.OraclesDir(); err != nil {
		noOracles.Do(func() { t.Logf("responses not checked against the XSDs: %v", err) })
	} else if err := wbxmltest.CheckResponse(schema, mustMarshal(t, doc)); err != nil {
		t.Fatal(err)
	}
	return w, doc
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
	for i := 1; i <= 103; i++ {
		e.appendDated(t, in, i, e.now.Add(-time.Hour), 0)
	}
	for i := 201; i <= 203; i++ {
		e.appendDated(t, work, i, e.now.Add(-time.Hour), 0)
	}
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
	for i := 104; i <= 106; i++ {
		e.appendDated(t, in, i, e.now.Add(-time.Hour), 0)
	}
	for i := 204; i <= 206; i++ {
		e.appendDated(t, work, i, e.now.Add(-time.Hour), 0)
	}
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
