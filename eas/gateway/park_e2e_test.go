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
