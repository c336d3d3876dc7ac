package gateway_test

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/easgate/easgate/backend/testsrv"
	"github.com/easgate/easgate/eas/gateway"
	"github.com/easgate/easgate/wbxml"
)

// TestE2EPingParked: a waiting Ping over HTTP/1.1 is parked (no net/http
// goroutine holds it: easgate_eas_requests_parked counts it), an APPEND
// from another IMAP client is answered on the parked connection, and the
// phone's next request goes over that same connection (no new dial), in
// plain HTTP and in TLS. Over HTTP/2 the Ping cannot be parked: it waits
// in its handler as before and is answered the same way.
func TestE2EPingParked(t *testing.T) {
	cert := testsrv.SelfSigned(t)
	for _, tc := range []struct {
		name   string
		tls    bool
		http2  bool
		parked int
	}{
		{name: "http", parked: 1},
		{name: "https", tls: true, parked: 1},
		{name: "h2", tls: true, http2: true, parked: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newPushEnv(t)
			g := e.start(func(c *gateway.Config) {
				if tc.tls {
					c.TLSCert, c.TLSKey = cert.CertFile, cert.KeyFile
				}
			})
			if tc.tls {
				g.easURL = strings.Replace(g.easURL, "http://", "https://", 1)
			}
			var dials atomic.Int32
			tr := &http.Transport{
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					dials.Add(1)
					return (&net.Dialer{}).DialContext(ctx, network, addr)
				},
				TLSClientConfig:   &tls.Config{RootCAs: cert.Roots},
				ForceAttemptHTTP2: tc.http2,
			}
			defer tr.CloseIdleConnections()
			g.client = &http.Client{Transport: tr}
			d := e.newDevice(g, "alice", "ApplPARK1")

			ch := d.ping(d.c, 3000)
			until(t, "Ping waiting", func() bool { return e.metric(g, "easgate_push_waiting") == 1 })
			if n := e.metric(g, "easgate_eas_requests_parked"); n != tc.parked {
				t.Fatalf("%d parked requests, want %d", n, tc.parked)
			}
			dialed := dials.Load()
			e.appendMail("alice")
			r := answer(t, "Ping", ch)
			expectPing(t, "parked Ping after an APPEND", r, 2, d.inbox)
			if r.Tree == nil || r.Header.Get("Content-Length") == "" && !tc.http2 {
				t.Fatalf("answer without body or Content-Length: %+v", r.Header)
			}
			until(t, "nothing parked", func() bool { return e.metric(g, "easgate_eas_requests_parked") == 0 })
			if next := d.sync(t, d.key); next == d.key {
				t.Fatal("the Sync after the wake brought nothing")
			}
			if n := dials.Load(); n != dialed {
				t.Fatalf("the Sync after the parked Ping dialed %d new connections, want 0 (the connection goes back to net/http)", n-dialed)
			}
		})
	}
}

// TestE2EHangingSyncParked: a Sync with HeartbeatInterval and nothing to
// report is parked like a Ping; an APPEND from another IMAP client makes
// its answer the new message (an Add with the message's subject), on the
// parked connection.
func TestE2EHangingSyncParked(t *testing.T) {
	e := newPushEnv(t)
	g := e.start(nil)
	d := e.newDevice(g, "alice", "ApplHANG1")
	req := wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, wbxml.E(wbxml.AirSyncCollection,
		wbxml.T(wbxml.AirSyncSyncKey, d.key), wbxml.T(wbxml.AirSyncCollectionId, d.inbox),
		wbxml.T(wbxml.AirSyncWindowSize, "100"))), wbxml.T(wbxml.AirSyncHeartbeatInterval, "600"))
	ch := inBackground(d.c, "Sync", req)
	until(t, "hanging Sync parked", func() bool {
		return e.metric(g, "easgate_push_waiting") == 1 && e.metric(g, "easgate_eas_requests_parked") == 1
	})
	e.appendMail("alice")
	r := answer(t, "hanging Sync", ch)
	checkWBXML(t, "SyncResponse", r)
	if r.HTTPStatus != 200 || r.Tree == nil {
		t.Fatalf("hanging Sync: HTTP %d, body %q", r.HTTPStatus, r.Body)
	}
	col := r.Tree.Child(wbxml.AirSyncCollections).Child(wbxml.AirSyncCollection)
	adds := col.Child(wbxml.AirSyncCommands).ChildrenOf(wbxml.AirSyncAdd)
	if col.ChildText(wbxml.AirSyncStatus) != "1" || len(adds) != 1 ||
		adds[0].Child(wbxml.AirSyncApplicationData).ChildText(wbxml.EmailSubject) != "news" {
		t.Fatalf("hanging Sync after an APPEND: %v", r.Tree)
	}
	until(t, "nothing parked", func() bool { return e.metric(g, "easgate_eas_requests_parked") == 0 })
}
