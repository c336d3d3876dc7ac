package eas

import (
	"context"
	"fmt"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/easgate/easgate/wbxml"
)

// newHangingEnv is a pingEnv whose Sync waits on the same test-driven
// heartbeat, with heartbeats bounded to 60–600 s.
func newHangingEnv(t *testing.T) *pingEnv {
	e := newPingEnv(t, 0)
	e.srv.cfg.PingMaxHeartbeat = 600 * time.Second
	hs := e.srv.newHangingSync(&mailSync{s: e.srv, eng: e.p.eng})
	hs.afterFunc = e.p.afterFunc
	hs.waiting = e.p.waiting
	if err := e.srv.Handle("Sync", hs.sync); err != nil {
		t.Fatal(err)
	}
	return e
}

// startSync sends a Sync in the background.
func (e *pingEnv) startSync(ctx context.Context, body *wbxml.Element) <-chan *httptest.ResponseRecorder {
	return e.start(ctx, "Sync", body)
}

// syncResult waits for a background Sync; nil for the empty answer.
func (e *pingEnv) syncResult(t *testing.T, ctx context.Context, ch <-chan *httptest.ResponseRecorder) *wbxml.Element {
	t.Helper()
	return await(t, ctx, ch, "Sync")
}

func withWait(body *wbxml.Element, tag wbxml.Tag, v string) *wbxml.Element {
	return body.Add(wbxml.T(tag, v))
}

// TestHangingSyncBounds: Wait and HeartbeatInterval outside the
// configured bounds get Status 14 with the nearest limit, in minutes for
// Wait and seconds for HeartbeatInterval.
func TestHangingSyncBounds(t *testing.T) {
	e := newHangingEnv(t)
	in := e.ids["INBOX"]
	for _, tc := range []struct {
		tag        wbxml.Tag
		value, lim string
	}{
		{wbxml.AirSyncHeartbeatInterval, "900", "600"},
		{wbxml.AirSyncHeartbeatInterval, "30", "60"},
		{wbxml.AirSyncWait, "20", "10"},
	} {
		_, doc := e.post(t, "Sync", "SyncResponse", withWait(syncReq(collReq("0", in, 10)), tc.tag, tc.value))
		if doc == nil || doc.ChildText(wbxml.AirSyncStatus) != "14" || doc.ChildText(wbxml.AirSyncLimit) != tc.lim {
			t.Fatalf("%v %s: %v, want Status 14 Limit %s", tc.tag, tc.value, doc, tc.lim)
		}
	}
}

// TestHangingSync: a hanging Sync with nothing to report waits; an
// APPEND from another client ends it with the new message; an empty
// request waits with the cached heartbeat; a Ping of the device ends it
// with the empty answer; at the heartbeat the answer is empty.
func TestHangingSync(t *testing.T) {
	e := newHangingEnv(t)
	ctx := guard(t)
	in := e.ids["INBOX"]
	e.appendMsg(t, in, 1)
	e.prime(t, in)

	ch := e.startSync(ctx, withWait(syncReq(collReq(e.currentKey(t, in), in, 100)), wbxml.AirSyncHeartbeatInterval, "300"))
	e.waitFor(t, ctx)
	if hb := <-e.hbs; hb > 300*time.Second || hb < 290*time.Second {
		t.Fatalf("waiting for %v, want about 300 s", hb)
	}
	uid := e.appendMsg(t, in, 2)
	doc := e.syncResult(t, ctx, ch)
	if got := adds(collection(t, doc, in)); !slices.Equal(got, []string{fmt.Sprintf("%s:%d", in, uid)}) {
		t.Fatalf("woken Sync adds %v, want the new message %d", got, uid)
	}

	// Empty request: the cached one, heartbeat included; a Ping of the
	// device ends it with the empty answer.
	ch = e.startSync(ctx, nil)
	e.waitFor(t, ctx)
	<-e.hbs
	ping := e.startPing(ctx, pingReq("480", in))
	if doc := e.syncResult(t, ctx, ch); doc != nil {
		t.Fatalf("superseded hanging Sync answered %v, want the empty answer", doc)
	}
	e.waitFor(t, ctx)
	<-e.hbs
	close(e.expire)
	if doc := e.result(t, ctx, ping); doc.ChildText(wbxml.PingStatus) != "1" {
		t.Fatalf("Ping: %v", doc)
	}

	// At the heartbeat: the empty answer.
	ch = e.startSync(ctx, withWait(syncReq(collReq(e.currentKey(t, in), in, 100)), wbxml.AirSyncWait, "5"))
	e.waitFor(t, ctx)
	if hb := <-e.hbs; hb > 5*time.Minute || hb < 4*time.Minute {
		t.Fatalf("waiting for %v, want about 5 minutes", hb)
	}
	if doc := e.syncResult(t, ctx, ch); doc != nil {
		t.Fatalf("hanging Sync at its heartbeat answered %v", doc)
	}
	if n := e.srv.broker.(interface{ Len() int }).Len(); n != 0 {
		t.Fatalf("%d waits still registered", n)
	}
}
