package eas

import (
	"bytes"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/easgate/easgate/wbxml"
)

// TestParkedAnswerAtOnce: a parked hanging Sync whose first look fails
// (here: the user's watchers are closed) is answered at once with the
// server error (Status 110), on its parked connection, and parking goes on working
// (EndWaits does not block). The wait's first look reads IMAP, so it
// must not run under the parking lock.
func TestParkedAnswerAtOnce(t *testing.T) {
	e := newHangingEnv(t)
	in := e.ids["INBOX"]
	e.prime(t, in)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hsrv := &http.Server{Handler: e.srv}
	go hsrv.Serve(e.srv.Listener(ln))
	t.Cleanup(func() { hsrv.Close() })
	e.srv.hub.Close()

	raw := mustMarshal(t, withWait(syncReq(collReq(e.currentKey(t, in), in, 100)), wbxml.AirSyncHeartbeatInterval, "300"))
	r := post("Sync", "14.1", raw)
	req, err := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+r.URL.RequestURI(), bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = r.Header.Clone()
	answered := make(chan string, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Error(err)
			answered <- ""
			return
		}
		defer resp.Body.Close()
		doc, err := wbxml.Parse(resp.Body, wbxml.DefaultLimits)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Errorf("hanging Sync with its watcher gone: HTTP %d, %v", resp.StatusCode, err)
			answered <- ""
			return
		}
		answered <- doc.ChildText(wbxml.AirSyncStatus)
	}()
	select {
	case status := <-answered:
		// 14.1: a server error is the common Status 110 in a 200 answer.
		if status != "110" {
			t.Fatalf("hanging Sync with its watcher gone: Status %q, want 110", status)
		}
	case <-time.After(60 * time.Second): // a hang guard
		t.Fatal("parked hanging Sync never answered")
	}
	ended := make(chan struct{})
	go func() {
		e.srv.EndWaits()
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(60 * time.Second): // a hang guard
		t.Fatal("EndWaits blocked: the parking lock is held")
	}
}
