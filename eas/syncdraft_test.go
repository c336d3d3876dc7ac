package eas

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/mail"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/wbxml"
	"github.com/easgate/easgate/wbxml/wbxmltest"
)

// TestSyncDraftAddHTTP: a 16.0 phone adds a draft with a base64
// attachment to Drafts over HTTP; the response names the new ServerId and
// validates against the schema, and Dovecot's Drafts holds the composed
// message, From the user's address.
func TestSyncDraftAddHTTP(t *testing.T) {
	e := newSyncEnv(t)
	dr := e.ids["Drafts"]
	sync := func(body *wbxml.Element) *wbxml.Element {
		t.Helper()
		w := e.do(post("Sync", "16.0", mustMarshal(t, body)))
		if w.Code != 200 || w.Body.Len() == 0 {
			t.Fatalf("Sync: HTTP %d, %d bytes", w.Code, w.Body.Len())
		}
		doc := decode(t, w)
		wbxmltest.ValidateResponse(t, "SyncResponse", mustMarshal(t, doc))
		return doc
	}
	c := collection(t, sync(syncReq(collReq("0", dr, 10))), dr)
	key := c.ChildText(wbxml.AirSyncSyncKey)
	content := []byte("attachment bytes \x00\x01\x02")
	add := wbxml.E(wbxml.AirSyncCommands, wbxml.E(wbxml.AirSyncAdd,
		wbxml.T(wbxml.AirSyncClientId, "draft-1"),
		wbxml.E(wbxml.AirSyncApplicationData,
			wbxml.T(wbxml.EmailTo, `"Bob" <bob@example.com>`),
			wbxml.T(wbxml.EmailSubject, "Lunch?"),
			wbxml.T(wbxml.EmailImportance, "1"),
			wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "2"), wbxml.T(wbxml.AirSyncBaseData, "<p>At noon?</p>")),
			wbxml.E(wbxml.AirSyncBaseAttachments, wbxml.E(wbxml.AirSyncBaseAdd,
				wbxml.T(wbxml.AirSyncBaseClientId, "att-1"),
				wbxml.T(wbxml.AirSyncBaseContent, base64.StdEncoding.EncodeToString(content)),
				wbxml.T(wbxml.AirSyncBaseMethod, "1"),
				wbxml.T(wbxml.AirSyncBaseDisplayName, "menu.txt"),
				wbxml.T(wbxml.AirSyncBaseContentType, "text/plain"))))))
	c = collection(t, sync(syncReq(collReq(key, dr, 10, add))), dr)
	rs := c.Child(wbxml.AirSyncResponses)
	if rs == nil || rs.Child(wbxml.AirSyncAdd) == nil {
		t.Fatalf("no Add response: %v", c)
	}
	ra := rs.Child(wbxml.AirSyncAdd)
	if ra.ChildText(wbxml.AirSyncClientId) != "draft-1" || ra.ChildText(wbxml.AirSyncStatus) != "1" || !strings.HasPrefix(ra.ChildText(wbxml.AirSyncServerId), dr+":") {
		t.Fatalf("Add response %v", ra)
	}
	uids, err := e.sess.Search(context.Background(), e.folders[dr], time.Time{})
	if err != nil || uids.Len() != 1 {
		t.Fatalf("Drafts holds %v (%v), want one message", uids, err)
	}
	uid := uids.Max()
	if !backend.HasFlag(e.flags(t, dr, uid), backend.FlagDraft) {
		t.Error(`draft not \Draft`)
	}
	raw, err := e.sess.Section(context.Background(), e.folders[dr], uid, "", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	mr, err := mail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	from, _ := mr.Header.AddressList("From")
	if len(from) != 1 || from[0].Address != "jane@example.com" {
		t.Errorf("From %v, want the user's address", from)
	}
	var html string
	var att []byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p.Body)
		if _, ok := p.Header.(*mail.AttachmentHeader); ok {
			att = b
		} else {
			html = string(b)
		}
	}
	if html != "<p>At noon?</p>" || !bytes.Equal(att, content) {
		t.Errorf("stored body %q, attachment %q", html, att)
	}
	// Nothing failed to convert, and the counter says so.
	mfs, err := e.srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "easgate_sync_items_failed_total" {
			found = len(mf.GetMetric()) == 1 && mf.GetMetric()[0].GetCounter().GetValue() == 0
		}
	}
	if !found {
		t.Error("easgate_sync_items_failed_total missing or not 0")
	}
}
