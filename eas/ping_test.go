package eas

import (
	"context"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/eas/push"
	"github.com/easgate/easgate/wbxml"
)

// pingEnv is a syncEnv whose Ping runs on test-driven timers: the
// heartbeat ends when the test closes expire, the poll ticks when the
// test sends on ticks, and every Ping that starts waiting says so on
// waiting. Nothing in these tests depends on how long anything takes.
type pingEnv struct {
	*syncEnv
	p       *pinger
	expire  chan time.Time
	ticks   chan time.Time
	waiting chan string
	hbs     chan time.Duration // the heartbeat each waiting Ping asked for
}

func newPingEnv(t *testing.T, maxFolders int) *pingEnv {
	se := newSyncEnv(t)
	se.srv.cfg.PingMaxFolders = maxFolders
	pe := &pingEnv{syncEnv: se, expire: make(chan time.Time), ticks: make(chan time.Time),
		waiting: make(chan string, 8), hbs: make(chan time.Duration, 8)}
	p := se.srv.newPinger()
	p.afterFunc = func(d time.Duration, f func()) func() {
		pe.hbs <- d
		stop := make(chan struct{})
		go func() {
			select {
			case <-pe.expire:
				f()
			case <-stop:
			}
		}()
		var once sync.Once
		return func() { once.Do(func() { close(stop) }) }
	}
	se.srv.hub.Ticker = func(time.Duration) (<-chan time.Time, func()) { return pe.ticks, func() {} }
	se.srv.hub.Linger = -1
	t.Cleanup(se.srv.hub.Close)
	p.waiting = func(user, device string) { pe.waiting <- user + "/" + device }
	pe.p = p
	if err := se.srv.Handle("Ping", p.ping); err != nil {
		t.Fatal(err)
	}
	return pe
}

// guard is the context every waiting test runs under, so that a bug
// fails the test instead of hanging it.
func guard(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func pingReq(hb string, ids ...string) *wbxml.Element {
	p := wbxml.E(wbxml.PingPing)
	if hb != "" {
		p.Add(wbxml.T(wbxml.PingHeartbeatInterval, hb))
	}
	if len(ids) > 0 {
		fs := wbxml.E(wbxml.PingFolders)
		for _, id := range ids {
			fs.Add(wbxml.E(wbxml.PingFolder, wbxml.T(wbxml.PingId, id), wbxml.T(wbxml.PingClass, "Email")))
		}
		p.Add(fs)
	}
	return p
}

// startPing sends a Ping in the background; the result arrives on the
// channel.
func (e *pingEnv) startPing(ctx context.Context, body *wbxml.Element) <-chan *httptest.ResponseRecorder {
	return e.start(ctx, "Ping", body)
}

// start sends a command in the background; the result arrives on the
// channel.
func (e *pingEnv) start(ctx context.Context, cmd string, body *wbxml.Element) <-chan *httptest.ResponseRecorder {
	var raw []byte
	if body != nil {
		raw = mustMarshal(e.t, body)
	}
	out := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, post(cmd, "14.1", raw).WithContext(ctx))
		out <- w
	}()
	return out
}

// result waits for a background Ping and checks its answer against the
// schema.
func (e *pingEnv) result(t *testing.T, ctx context.Context, ch <-chan *httptest.ResponseRecorder) *wbxml.Element {
	t.Helper()
	doc := await(t, ctx, ch, "Ping")
	if doc == nil {
		t.Fatal("Ping: empty answer")
	}
	return doc
}

// waitFor blocks until a Ping is waiting.
func (e *pingEnv) waitFor(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-e.waiting:
	case <-ctx.Done():
		t.Fatal("Ping never started waiting")
	}
}

func pingFolders(doc *wbxml.Element) []string {
	var ids []string
	if fs := doc.Child(wbxml.PingFolders); fs != nil {
		for _, f := range fs.ChildrenOf(wbxml.PingFolder) {
			ids = append(ids, f.Value())
		}
	}
	return ids
}

// prime syncs the collections completely, so that the device has state
// with everything in them.
func (e *pingEnv) prime(t *testing.T, sids ...string) {
	t.Helper()
	for _, sid := range sids {
		_, doc := e.post(t, "Sync", "SyncResponse", syncReq(collReq("0", sid, 100)))
		key := collection(t, doc, sid).ChildText(wbxml.AirSyncSyncKey)
		_, doc = e.post(t, "Sync", "SyncResponse", syncReq(collReq(key, sid, 100)))
		if doc != nil {
			if c := collection(t, doc, sid); c.Child(wbxml.AirSyncMoreAvailable) != nil {
				t.Fatalf("collection %s not synced in one go", sid)
			}
		}
	}
}

func TestPingRefusals(t *testing.T) {
	e := newPingEnv(t, 2)
	in, work, trash := e.ids["INBOX"], e.ids["Work"], e.ids["Trash"]
	malformed := wbxml.E(wbxml.PingPing, wbxml.E(wbxml.PingFolders,
		wbxml.E(wbxml.PingFolder, wbxml.T(wbxml.PingId, in))))
	for _, tc := range []struct {
		name       string
		body       *wbxml.Element
		status     string
		limit      wbxml.Tag
		limitValue string
	}{
		{"empty without cache", nil, "3", 0, ""},
		{"heartbeat only, nothing cached", pingReq("480"), "3", 0, ""},
		{"heartbeat too short", pingReq("59", in), "5", wbxml.PingHeartbeatInterval, "60"},
		{"heartbeat too long", pingReq("3541", in), "5", wbxml.PingHeartbeatInterval, "3540"},
		{"too many folders", pingReq("480", in, work, trash), "6", wbxml.PingMaxFolders, "2"},
		{"folder without class", malformed, "4", 0, ""},
		{"heartbeat not a number", pingReq("soon", in), "4", 0, ""},
		{"empty Folders", wbxml.E(wbxml.PingPing, wbxml.E(wbxml.PingFolders)), "4", 0, ""},
		// None of the refused Pings was cached.
		{"empty after refusals", nil, "3", 0, ""},
		{"unknown folder", pingReq("480", "999"), "7", 0, ""},
		// A well-formed Ping is cached even when its folders are not
		// known (yet): the empty Ping repeats it.
		{"empty repeats the cached one", nil, "7", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, doc := e.post(t, "Ping", "PingResponse", tc.body)
			if got := doc.ChildText(wbxml.PingStatus); got != tc.status {
				t.Fatalf("status %s, want %s", got, tc.status)
			}
			if tc.limit != 0 && doc.ChildText(tc.limit) != tc.limitValue {
				t.Fatalf("limit %q, want %q", doc.ChildText(tc.limit), tc.limitValue)
			}
		})
	}
	// A folder made in webmail since the device's FolderSync: Status 7.
	if _, err := e.sess.CreateFolder(context.Background(), "", "Webmail"); err != nil {
		t.Fatal(err)
	}
	if _, doc := e.post(t, "Ping", "PingResponse", pingReq("480", in)); doc.ChildText(wbxml.PingStatus) != "7" {
		t.Fatalf("hierarchy changed: status %s, want 7", doc.ChildText(wbxml.PingStatus))
	}
}

// TestPingCacheAndExpiry: a full Ping is cached; an empty one and one
// with only a new heartbeat reuse it; the heartbeat ending gives 1.
func TestPingCacheAndExpiry(t *testing.T) {
	e := newPingEnv(t, 0)
	ctx := guard(t)
	in, work := e.ids["INBOX"], e.ids["Work"]
	e.prime(t, in, work)
	close(e.expire) // every heartbeat is over as soon as it starts

	for _, tc := range []struct {
		name string
		body *wbxml.Element
		hb   time.Duration
	}{
		{"full", pingReq("480", in, work), 480 * time.Second},
		{"empty reuses all", nil, 480 * time.Second},
		{"new heartbeat, cached folders", pingReq("900"), 900 * time.Second},
		{"empty reuses the newest", nil, 900 * time.Second},
	} {
		doc := e.result(t, ctx, e.startPing(ctx, tc.body))
		if got := doc.ChildText(wbxml.PingStatus); got != "1" {
			t.Fatalf("%s: status %s, want 1", tc.name, got)
		}
		if hb := <-e.hbs; hb != tc.hb {
			t.Fatalf("%s: heartbeat %v, want %v", tc.name, hb, tc.hb)
		}
	}
}

// TestPingWakeUps: changes made by another IMAP client wake a waiting
// Ping, through IDLE for the Inbox and through the poll for other
// folders; changes already there answer at once; changes the device
// synced itself do not count.
func TestPingWakeUps(t *testing.T) {
	e := newPingEnv(t, 0)
	ctx := guard(t)
	in, work := e.ids["INBOX"], e.ids["Work"]
	e.appendMsg(t, in, 1)
	e.prime(t, in, work)

	// IDLE: an APPEND to INBOX while the Ping waits.
	ch := e.startPing(ctx, pingReq("480", in, work))
	e.waitFor(t, ctx)
	e.appendMsg(t, in, 2)
	doc := e.result(t, ctx, ch)
	if doc.ChildText(wbxml.PingStatus) != "2" || !slices.Equal(pingFolders(doc), []string{in}) {
		t.Fatalf("after APPEND to INBOX: %v", doc)
	}

	// The change is still not synced: the next Ping answers at once.
	doc = e.result(t, ctx, e.startPing(ctx, nil))
	if doc.ChildText(wbxml.PingStatus) != "2" || !slices.Equal(pingFolders(doc), []string{in}) {
		t.Fatalf("pending change: %v", doc)
	}
	e.prime(t, in)

	// Poll: an APPEND to Work, seen at the next tick.
	ch = e.startPing(ctx, nil)
	e.waitFor(t, ctx)
	e.appendMsg(t, work, 3)
	select {
	case e.ticks <- time.Time{}:
	case <-ctx.Done():
		t.Fatal("Ping stopped polling")
	}
	doc = e.result(t, ctx, ch)
	if doc.ChildText(wbxml.PingStatus) != "2" || !slices.Equal(pingFolders(doc), []string{work}) {
		t.Fatalf("after APPEND to Work: %v", doc)
	}
	e.prime(t, work)

	// The device's own flag change (a Sync Change) is in its state: the
	// per-device check finds nothing although the folder's marks moved;
	// the same change made by another client is found.
	_, doc = e.post(t, "Sync", "SyncResponse", syncReq(collReq(e.currentKey(t, in), in, 100,
		wbxml.E(wbxml.AirSyncCommands, wbxml.E(wbxml.AirSyncChange,
			wbxml.T(wbxml.AirSyncServerId, in+":1"),
			wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1")))))))
	if st := collection(t, doc, in).ChildText(wbxml.AirSyncStatus); st != "1" {
		t.Fatalf("Sync Change: status %s", st)
	}
	if !slices.Contains(e.flags(t, in, 1), backend.FlagSeen) {
		t.Fatal("Sync Change did not set \\Seen")
	}
	cw := &changeWait{s: e.srv, eng: e.p.eng, req: &Request{User: testUser, DeviceID: "appldev1"}, sess: e.sess}
	watch := watchedFolder{sid: in, folder: e.folders[in]}
	if changed, gone, err := cw.changed(ctx, watch); err != nil || changed || gone {
		t.Fatalf("after the device's own change: changed %v gone %v err %v", changed, gone, err)
	}
	if _, err := e.sess.StoreFlags(ctx, e.folders[in], 1, []string{backend.FlagFlagged}, nil); err != nil {
		t.Fatal(err)
	}
	if changed, _, err := cw.changed(ctx, watch); err != nil || !changed {
		t.Fatalf("after another client's change: changed %v err %v", changed, err)
	}

	// The same with a waiting Ping: the device's own flag change wakes
	// the watcher (IDLE reports it) but not the Ping, which checks and
	// waits on; another client's flag change answers it.
	e.prime(t, in)
	ch = e.startPing(ctx, nil)
	e.waitFor(t, ctx)
	_, doc = e.post(t, "Sync", "SyncResponse", syncReq(collReq(e.currentKey(t, in), in, 100,
		wbxml.E(wbxml.AirSyncCommands, wbxml.E(wbxml.AirSyncChange,
			wbxml.T(wbxml.AirSyncServerId, in+":1"),
			wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "0")))))))
	if st := collection(t, doc, in).ChildText(wbxml.AirSyncStatus); st != "1" {
		t.Fatalf("Sync Change: status %s", st)
	}
	e.waitFor(t, ctx) // woken, checked, waiting again
	select {
	case w := <-ch:
		t.Fatalf("the device's own change answered its Ping: HTTP %d", w.Code)
	default:
	}
	if _, err := e.sess.StoreFlags(ctx, e.folders[in], 1, nil, []string{backend.FlagFlagged}); err != nil {
		t.Fatal(err)
	}
	doc = e.result(t, ctx, ch)
	if doc.ChildText(wbxml.PingStatus) != "2" || !slices.Equal(pingFolders(doc), []string{in}) {
		t.Fatalf("after another client's flag change: %v", doc)
	}
}

// pausingStore is a mail store whose sessions stop after a StoreFlags
// until the test lets them go on: a Sync that applied a phone's change
// to IMAP and has not yet recorded it in the device's sync state.
type pausingStore struct {
	backend.Store
	stored  chan struct{} // told after StoreFlags
	proceed chan struct{} // closed to let it return
}

func (s *pausingStore) Open(ctx context.Context, user, password string) (backend.Session, error) {
	sess, err := s.Store.Open(ctx, user, password)
	if err != nil {
		return nil, err
	}
	return &pausingSession{Session: sess, s: s}, nil
}

type pausingSession struct {
	backend.Session
	s *pausingStore
}

func (p *pausingSession) StoreFlags(ctx context.Context, id backend.FolderID, uid backend.UID, add, remove []string) ([]string, error) {
	flags, err := p.Session.StoreFlags(ctx, id, uid, add, remove)
	p.s.stored <- struct{}{}
	<-p.s.proceed
	return flags, err
}

func (p *pausingSession) Watch(ctx context.Context, id backend.FolderID, changed func()) (backend.Watch, error) {
	return p.Session.(backend.Watcher).Watch(ctx, id, changed)
}

// TestPingOwnChangeWhileSyncing: the device's Sync has set a flag in
// IMAP and not yet recorded it when the user's watcher reports the
// change; the device's waiting Ping must not take its own change for
// news (it would answer Status 2 now): it looks again once the Sync is
// done, finds nothing, and waits on until another client's change.
func TestPingOwnChangeWhileSyncing(t *testing.T) {
	e := newPingEnv(t, 0)
	ctx := guard(t)
	in := e.ids["INBOX"]
	e.appendMsg(t, in, 1)
	e.prime(t, in)
	ps := &pausingStore{Store: e.srv.cfg.Mail, stored: make(chan struct{}), proceed: make(chan struct{})}
	e.srv.cfg.Mail = ps

	ch := e.startPing(ctx, pingReq("480", in))
	e.waitFor(t, ctx)
	sync := e.start(ctx, "Sync", syncReq(collReq(e.currentKey(t, in), in, 100,
		wbxml.E(wbxml.AirSyncCommands, wbxml.E(wbxml.AirSyncChange,
			wbxml.T(wbxml.AirSyncServerId, in+":1"),
			wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailRead, "1")))))))
	select {
	case <-ps.stored:
	case <-ctx.Done():
		t.Fatal("the Sync never set the flag")
	}
	// The watcher reports the flag change; the Ping either answers (the
	// bug) or puts its look off until the device's Sync is done.
	key := push.Key{User: testUser, Device: "appldev1"}
	for deferred := false; !deferred; {
		select {
		case w := <-ch:
			t.Fatalf("the device's own change answered its Ping while its Sync ran: HTTP %d", w.Code)
		case <-ctx.Done():
			t.Fatal("the Ping never heard of the change")
		case <-time.After(5 * time.Millisecond):
		}
		e.srv.busy.mu.Lock()
		d := e.srv.busy.m[key]
		deferred = d != nil && len(d.after) > 0
		e.srv.busy.mu.Unlock()
	}
	close(ps.proceed)
	if doc := await(t, ctx, sync, "Sync"); collection(t, doc, in).ChildText(wbxml.AirSyncStatus) != "1" {
		t.Fatalf("Sync Change: %v", doc)
	}
	e.waitFor(t, ctx) // looked again, waiting again
	select {
	case w := <-ch:
		t.Fatalf("the device's own change answered its Ping after its Sync: HTTP %d", w.Code)
	default:
	}
	if _, err := e.sess.StoreFlags(ctx, e.folders[in], 1, []string{backend.FlagFlagged}, nil); err != nil {
		t.Fatal(err)
	}
	doc := e.result(t, ctx, ch)
	if doc.ChildText(wbxml.PingStatus) != "2" || !slices.Equal(pingFolders(doc), []string{in}) {
		t.Fatalf("after another client's flag change: %v", doc)
	}
}

// TestPingHierarchyChange: a folder created by another client while a
// Ping waits answers it with Status 7 at the watcher's next poll.
func TestPingHierarchyChange(t *testing.T) {
	e := newPingEnv(t, 0)
	ctx := guard(t)
	in := e.ids["INBOX"]
	e.prime(t, in)
	ch := e.startPing(ctx, pingReq("480", in))
	e.waitFor(t, ctx)
	if _, err := e.sess.CreateFolder(ctx, "", "Webmail"); err != nil {
		t.Fatal(err)
	}
	select {
	case e.ticks <- time.Time{}:
	case <-ctx.Done():
		t.Fatal("the watcher stopped polling")
	}
	if doc := e.result(t, ctx, ch); doc.ChildText(wbxml.PingStatus) != "7" {
		t.Fatalf("Ping after a folder was created: %v", doc)
	}
}

// currentKey is the device's SyncKey of a collection.
func (e *pingEnv) currentKey(t *testing.T, sid string) string {
	t.Helper()
	k, err := e.p.eng.CurrentKey(context.Background(), testUser, "appldev1", sid)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestPingSuperseded: a newer Ping of the device ends the older one with
// Status 1; the newer one waits on until its own heartbeat ends.
func TestPingSuperseded(t *testing.T) {
	e := newPingEnv(t, 0)
	ctx := guard(t)
	in := e.ids["INBOX"]
	e.prime(t, in)

	older := e.startPing(ctx, pingReq("480", in))
	e.waitFor(t, ctx)
	newer := e.startPing(ctx, nil)
	doc := e.result(t, ctx, older)
	if doc.ChildText(wbxml.PingStatus) != "1" {
		t.Fatalf("superseded Ping: %v", doc)
	}
	e.waitFor(t, ctx)
	close(e.expire)
	if doc := e.result(t, ctx, newer); doc.ChildText(wbxml.PingStatus) != "1" {
		t.Fatalf("newer Ping at its heartbeat: %v", doc)
	}
	if n := e.srv.broker.(interface{ Len() int }).Len(); n != 0 {
		t.Fatalf("%d waits still registered", n)
	}
}

// TestPingClientGone: the wait ends when the client hangs up, and the
// IDLE connection with it.
func TestPingClientGone(t *testing.T) {
	e := newPingEnv(t, 0)
	ctx := guard(t)
	in := e.ids["INBOX"]
	e.prime(t, in)
	pctx, hangUp := context.WithCancel(ctx)
	ch := e.startPing(pctx, pingReq("480", in))
	e.waitFor(t, ctx)
	hangUp()
	select {
	case w := <-ch:
		if w.Body.Len() != 0 {
			t.Fatalf("answer written to a client that left: HTTP %d", w.Code)
		}
	case <-ctx.Done():
		t.Fatal("Ping did not end when the client left")
	}
}
