package gateway_test

import (
	"testing"

	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/wbxml"
)

// TestE2EQuirkParkedEmptyAnswer: an iPhone (Accept-Encoding: gzip) waits
// in a hanging Sync, parked by the front door, until its own Ping ends it.
// The answer, written on the parked connection, is the empty Sync
// response exactly as the digest §1.6 wants it on the wire: HTTP 200,
// Content-Length 0, no Content-Encoding, the WBXML Content-Type (tine20
// #4198: an iPhone takes a gzipped "empty" body for data and loops). The
// Ping's own answer, later, is gzipped WBXML.
func TestE2EQuirkParkedEmptyAnswer(t *testing.T) {
	e := newPushEnv(t)
	g := e.start(nil)
	d := e.newDevice(g, "alice", "ApplQUIRK1")
	d.c.Gzip = true
	req := wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, wbxml.E(wbxml.AirSyncCollection,
		wbxml.T(wbxml.AirSyncSyncKey, d.key), wbxml.T(wbxml.AirSyncCollectionId, d.inbox))),
		wbxml.T(wbxml.AirSyncHeartbeatInterval, "600"))
	ch := inBackground(d.c, "Sync", req)
	until(t, "hanging Sync parked", func() bool {
		return e.metric(g, "easgate_push_waiting") == 1 && e.metric(g, "easgate_eas_requests_parked") == 1
	})
	ping := d.ping(d.c, 480)
	r := answer(t, "hanging Sync ended by the Ping", ch)
	h := r.Header
	if r.HTTPStatus != 200 || r.WireLength != 0 || h.Get("Content-Length") != "0" || h.Get("Content-Encoding") != "" ||
		h.Get("Content-Type") != eas.ContentTypeWBXML || h.Get("MS-Server-ActiveSync") == "" {
		t.Fatalf("empty answer on the parked connection: HTTP %d, %d bytes, headers %v", r.HTTPStatus, r.WireLength, h)
	}
	until(t, "Ping parked", func() bool { return e.metric(g, "easgate_eas_requests_parked") == 1 })
	e.appendMail("alice")
	p := answer(t, "Ping", ping)
	expectPing(t, "Ping after an APPEND", p, 2, d.inbox)
	if !p.Gzipped {
		t.Errorf("Ping answer not gzipped although asked: headers %v", p.Header)
	}
}
