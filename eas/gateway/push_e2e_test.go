package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
	"github.com/easgate/easgate/devices/redistest"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/easclient"
	"github.com/easgate/easgate/eas/gateway"
	"github.com/easgate/easgate/wbxml"
)

// pushEnv is a Dovecot and a Redis shared by any number of gateways, as
// instances behind one load balancer.
type pushEnv struct {
	t       *testing.T
	dovecot *testsrv.Dovecot
	redis   string
	gws     []*pushGateway
}

// pushGateway is one running gateway instance.
type pushGateway struct {
	gw       *gateway.Gateway
	easURL   string
	adminURL string
	stop     func() error // ends Run and returns its error
	client   *http.Client // the devices' HTTP client; nil means the default
}

func newPushEnv(t *testing.T) *pushEnv {
	e := &pushEnv{t: t, dovecot: testsrv.StartDovecot(t, testsrv.DefaultUsers())}
	rs := redistest.Start(t)
	e.redis = "redis://" + rs.Addr + "/0"
	return e
}

// start runs a gateway on the shared servers; tweak adjusts its Config.
func (e *pushEnv) start(tweak func(*gateway.Config)) *pushGateway {
	t := e.t
	t.Helper()
	cfg := gateway.Config{
		Listen:      "127.0.0.1:0",
		AdminListen: "127.0.0.1:0",
		AdminToken:  adminToken,
		IMAP:        e.dovecot.Addr,
		Redis:       e.redis,
		PublicURL:   publicURL,
		WatchLinger: -1,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	gw, err := gateway.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	var stopped bool
	var runErr error
	g := &pushGateway{gw: gw, easURL: "http://" + gw.Addr(), adminURL: "http://" + gw.AdminAddr()}
	g.stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			runErr = <-done
		}
		return runErr
	}
	t.Cleanup(func() {
		if err := g.stop(); err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	})
	e.gws = append(e.gws, g)
	return g
}

// device is a provisioned phone that has synced its Inbox completely.
type device struct {
	c     *easclient.Client
	inbox string // the Inbox's CollectionId
	key   string // the Inbox's SyncKey after the last full sync
}

// newDevice provisions a phone of user on gateway g and syncs its Inbox.
func (e *pushEnv) newDevice(g *pushGateway, user, id string) *device {
	t := e.t
	t.Helper()
	c := &easclient.Client{BaseURL: g.easURL, User: user, Password: user + "pw",
		DeviceID: id, DeviceType: "iPhone", Version: "14.1", UserAgent: "Apple-iPhone15C2/2201.108", HTTPClient: g.client}
	provision(t, c, nil)
	_, fc, err := c.FolderSync(context.Background(), "0")
	if err != nil || fc.Status != 1 {
		t.Fatalf("FolderSync: %+v %v", fc, err)
	}
	d := &device{c: c}
	for _, f := range fc.Add {
		if f.Type == 2 {
			d.inbox = f.ServerID
		}
	}
	d.key = d.sync(t, "0")
	for {
		next := d.sync(t, d.key)
		if next == d.key {
			break
		}
		d.key = next
	}
	return d
}

// sync sends one Sync of the Inbox with key and returns the new key (key
// itself when the answer was empty: nothing to sync).
func (d *device) sync(t *testing.T, key string) string {
	t.Helper()
	req := wbxml.E(wbxml.AirSyncSync, wbxml.E(wbxml.AirSyncCollections, wbxml.E(wbxml.AirSyncCollection,
		wbxml.T(wbxml.AirSyncSyncKey, key), wbxml.T(wbxml.AirSyncCollectionId, d.inbox),
		wbxml.T(wbxml.AirSyncWindowSize, "100"))))
	r, err := d.c.Do(context.Background(), "Sync", req)
	if err != nil {
		t.Fatal(err)
	}
	if r.HTTPStatus != 200 {
		t.Fatalf("Sync: HTTP %d", r.HTTPStatus)
	}
	if r.Tree == nil {
		return key
	}
	col := r.Tree.Child(wbxml.AirSyncCollections).Child(wbxml.AirSyncCollection)
	if st := col.ChildText(wbxml.AirSyncStatus); st != "1" {
		t.Fatalf("Sync %s: status %s", key, st)
	}
	return col.ChildText(wbxml.AirSyncSyncKey)
}

// ping sends a Ping of the Inbox in the background (hb seconds; 0 sends
// an empty Ping) on client c.
func (d *device) ping(c *easclient.Client, hb int) <-chan *easclient.Response {
	var body *wbxml.Element
	if hb > 0 {
		body = wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingHeartbeatInterval, strconv.Itoa(hb)),
			wbxml.E(wbxml.PingFolders, wbxml.E(wbxml.PingFolder,
				wbxml.T(wbxml.PingId, d.inbox), wbxml.T(wbxml.PingClass, "Email"))))
	}
	return inBackground(c, "Ping", body)
}

// inBackground sends the command on client c from a goroutine; its
// answer comes on the channel (a transport error as HTTPStatus -1, its
// text as the Body; see answer).
func inBackground(c *easclient.Client, cmd string, body *wbxml.Element) <-chan *easclient.Response {
	out := make(chan *easclient.Response, 1)
	go func() {
		r, err := c.Do(context.Background(), cmd, body)
		if err != nil {
			r = &easclient.Response{HTTPStatus: -1, Body: []byte(err.Error())}
		}
		out <- r
	}()
	return out
}

// on returns a copy of the device's client that talks to gateway g.
func (d *device) on(g *pushGateway) *easclient.Client {
	c := &easclient.Client{BaseURL: g.easURL, User: d.c.User, Password: d.c.Password,
		DeviceID: d.c.DeviceID, DeviceType: d.c.DeviceType, Version: d.c.Version, UserAgent: d.c.UserAgent,
		HTTPClient: g.client}
	c.SetPolicyKey(d.c.PolicyKey())
	return c
}

// answer waits for a background Ping's answer (the bound is a hang guard).
func answer(t *testing.T, what string, ch <-chan *easclient.Response) *easclient.Response {
	t.Helper()
	select {
	case r := <-ch:
		if r.HTTPStatus == -1 {
			t.Fatalf("%s: %s", what, r.Body)
		}
		return r
	case <-time.After(60 * time.Second):
		t.Fatalf("%s: no answer", what)
	}
	return nil
}

// expectPing checks a Ping answer's status and folders.
func expectPing(t *testing.T, what string, r *easclient.Response, status int, folders ...string) {
	t.Helper()
	checkWBXML(t, "PingResponse", r)
	var got []string
	if r.Tree != nil {
		if fs := r.Tree.Child(wbxml.PingFolders); fs != nil {
			for _, f := range fs.ChildrenOf(wbxml.PingFolder) {
				got = append(got, f.Value())
			}
		}
	}
	if r.HTTPStatus != 200 || r.Status() != status || !slices.Equal(got, folders) {
		t.Fatalf("%s: HTTP %d status %d folders %v, want status %d folders %v", what, r.HTTPStatus, r.Status(), got, status, folders)
	}
}

// metric reads a gauge of gateway g's /metrics.
func (e *pushEnv) metric(g *pushGateway, name string) int {
	t := e.t
	t.Helper()
	env := &env{adminURL: g.adminURL}
	code, body := env.admin(t, "GET", "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: HTTP %d", code)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return int(f)
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return 0
}

// until waits for cond (a hang guard, not a timing assertion).
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// appendMail delivers a message to user's INBOX as another IMAP client.
func (e *pushEnv) appendMail(user string) {
	t := e.t
	t.Helper()
	c := e.dovecot.Dial(t, user)
	defer c.Close()
	msg := []byte("From: bob@example.org\r\nTo: " + user + "@example.org\r\nSubject: news\r\n\r\nhello\r\n")
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	cmd.Write(msg)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
}

// TestE2EPushOneIDLEPerUser: six devices of one user wait in Pings on one
// gateway; Dovecot counts one IDLE session for them (plus at most the
// pool's connections, fewer than the devices), and only the IDLE one once
// the pool's idle connections are closed; an APPEND from another IMAP
// client wakes every one of them with the Inbox. A device that syncs
// while the others wait does so on the IDLE session (no second one), and
// the next APPEND still wakes the others.
func TestE2EPushOneIDLEPerUser(t *testing.T) {
	e := newPushEnv(t)
	g := e.start(func(c *gateway.Config) { c.IMAPIdleTimeout = 500 * time.Millisecond })
	var devs []*device
	for i := range 6 {
		devs = append(devs, e.newDevice(g, "alice", fmt.Sprintf("ApplIDLE%d", i)))
	}
	var pings []<-chan *easclient.Response
	for _, d := range devs {
		pings = append(pings, d.ping(d.c, 3000))
	}
	store := g.gw.Mail().(*imapstore.Store)
	until(t, "six Pings waiting on one watcher", func() bool {
		return e.metric(g, "easgate_push_waiting") == 6 && e.metric(g, "easgate_push_watchers") == 1 &&
			store.Stats("alice").Watching == 1
	})
	n, err := e.dovecot.ConnectionCount("alice")
	if err != nil {
		t.Fatal(err)
	}
	st := store.Stats("alice")
	t.Logf("Dovecot: %d sessions of alice; pool %+v", n, st)
	if st.Watching != 1 || n > 1+imapstore.DefaultMaxConnsPerUser {
		t.Fatalf("Dovecot counts %d sessions of alice for 6 waiting devices; pool %+v", n, st)
	}
	until(t, "the IDLE connection alice's only one", func() bool {
		n, err := e.dovecot.ConnectionCount("alice")
		return err == nil && n == 1 && store.Stats("alice").Open == 0
	})

	appended := time.Now()
	e.appendMail("alice")
	for i, ch := range pings {
		expectPing(t, fmt.Sprintf("device %d after the APPEND", i), answer(t, "Ping", ch), 2, devs[i].inbox)
	}
	// Information only (Dovecot's IDLE reports after about 0.5 s).
	t.Logf("APPEND to the last of 6 Ping answers: %v", time.Since(appended))

	// Five devices sync the new mail and wait again; the sixth syncs it
	// while they wait: its Sync runs on the watcher's connection, so
	// Dovecot still counts one session of alice.
	pings = pings[:0]
	for _, d := range devs[1:] {
		d.key = d.sync(t, d.key)
		pings = append(pings, d.ping(d.c, 3000))
	}
	until(t, "five Pings waiting, alice's IDLE connection her only one", func() bool {
		st := store.Stats("alice")
		n, err := e.dovecot.ConnectionCount("alice")
		return e.metric(g, "easgate_push_waiting") == 5 && st.Watching == 1 && st.Open == 0 &&
			st.Lent == 0 && err == nil && n == 1
	})
	before := store.Stats("alice")
	key := devs[0].sync(t, devs[0].key)
	if key == devs[0].key {
		t.Fatal("device 0's Sync brought nothing after the APPEND")
	}
	devs[0].key = devs[0].sync(t, key)
	after := store.Stats("alice")
	n, err = e.dovecot.ConnectionCount("alice")
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || after.Dials != before.Dials || after.Lends <= before.Lends {
		t.Fatalf("device 0 synced beside the watcher: Dovecot counts %d sessions of alice; pool before %+v, after %+v", n, before, after)
	}
	e.appendMail("alice")
	for i, ch := range pings {
		expectPing(t, fmt.Sprintf("device %d after the second APPEND", i+1), answer(t, "Ping", ch), 2, devs[i+1].inbox)
	}
	until(t, "the watcher gone with the last waiter", func() bool {
		return e.metric(g, "easgate_push_watchers") == 0 && store.Stats("alice").Watching == 0
	})
}

// TestE2EPushTwoInstances: two gateways share Dovecot and Redis. A newer
// Ping on B ends the device's older Ping on A at once; the admin API of A
// reaches Pings held by B: wake (Status 2), block (Status 129) and wipe
// (HTTP 449 with Status 140).
func TestE2EPushTwoInstances(t *testing.T) {
	e := newPushEnv(t)
	a, b := e.start(nil), e.start(nil)
	d := e.newDevice(a, "alice", "ApplTWO1")
	env := &env{adminURL: a.adminURL}

	older := d.ping(d.on(a), 3000)
	until(t, "Ping waiting on A", func() bool { return e.metric(a, "easgate_push_waiting") == 1 })
	newer := d.ping(d.on(b), 0) // empty: the cached parameters
	expectPing(t, "older Ping on A after a newer one on B", answer(t, "older Ping", older), 1)
	until(t, "Ping waiting on B", func() bool { return e.metric(b, "easgate_push_waiting") == 1 })

	if code, body := env.admin(t, "POST", "/api/v1/devices/alice/ApplTWO1/wake"); code != 200 {
		t.Fatalf("wake: HTTP %d %s", code, body)
	}
	expectPing(t, "Ping on B after an admin wake on A", answer(t, "woken Ping", newer), 2, d.inbox)

	held := d.ping(d.on(b), 0)
	until(t, "Ping waiting on B", func() bool { return e.metric(b, "easgate_push_waiting") == 1 })
	if code, body := env.admin(t, "POST", "/api/v1/devices/alice/ApplTWO1/block"); code != 200 {
		t.Fatalf("block: HTTP %d %s", code, body)
	}
	expectGate(t, "Ping on B after a block on A", "PingResponse", answer(t, "blocked Ping", held), 200, eas.StatusDeviceBlocked)

	w := e.newDevice(b, "bob", "ApplTWO2")
	held = w.ping(w.c, 3000)
	until(t, "Ping waiting on B", func() bool { return e.metric(b, "easgate_push_waiting") == 1 })
	if code, body := env.admin(t, "POST", "/api/v1/devices/bob/ApplTWO2/wipe"); code != 200 {
		t.Fatalf("wipe: HTTP %d %s", code, body)
	}
	expectGate(t, "Ping on B after a wipe on A", "PingResponse", answer(t, "wiped Ping", held), eas.StatusRetryProvision, eas.StatusRemoteWipeRequested)
}

// TestE2EPingBeyondWriteTimeout: a Ping whose heartbeat is longer than the
// server's WriteTimeout still gets its answer (it extends its own write
// deadline). The device is set up on another instance, so that only the
// Ping meets the short timeout.
func TestE2EPingBeyondWriteTimeout(t *testing.T) {
	e := newPushEnv(t)
	setup := e.start(nil)
	g := e.start(func(c *gateway.Config) {
		c.WriteTimeout = time.Second
		c.PingMinHeartbeat = time.Second
	})
	d := e.newDevice(setup, "alice", "ApplSLOW1")
	expectPing(t, "Ping of 3 s with a 1 s WriteTimeout", answer(t, "Ping", d.ping(d.on(g), 3)), 1)
}

// TestE2EShutdownAnswersPings: when the gateway shuts down, a waiting
// Ping is answered with Status 1 before the process lets go.
func TestE2EShutdownAnswersPings(t *testing.T) {
	e := newPushEnv(t)
	g := e.start(nil)
	d := e.newDevice(g, "alice", "ApplSTOP1")
	ch := d.ping(d.c, 3000)
	until(t, "Ping waiting", func() bool { return e.metric(g, "easgate_push_waiting") == 1 })
	if err := g.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	expectPing(t, "Ping at shutdown", answer(t, "Ping", ch), 1)
}

// TestE2EPushBolt: with the embedded store (one instance) the in-process
// broker does the same: a newer Ping ends the older, an admin wake and a
// block reach the waiting Ping.
func TestE2EPushBolt(t *testing.T) {
	e := newPushEnv(t)
	g := e.start(func(c *gateway.Config) {
		c.Redis = ""
		c.DataDir = t.TempDir()
	})
	d := e.newDevice(g, "alice", "ApplBOLT1")
	env := &env{adminURL: g.adminURL}

	older := d.ping(d.c, 3000)
	until(t, "Ping waiting", func() bool { return e.metric(g, "easgate_push_waiting") == 1 })
	newer := d.ping(d.c, 0)
	expectPing(t, "older Ping after a newer one", answer(t, "older Ping", older), 1)
	until(t, "newer Ping waiting", func() bool { return e.metric(g, "easgate_push_waiting") == 1 })
	if code, body := env.admin(t, "POST", "/api/v1/devices/alice/ApplBOLT1/wake"); code != 200 {
		t.Fatalf("wake: HTTP %d %s", code, body)
	}
	expectPing(t, "Ping after an admin wake", answer(t, "woken Ping", newer), 2, d.inbox)

	held := d.ping(d.c, 0)
	until(t, "Ping waiting", func() bool { return e.metric(g, "easgate_push_waiting") == 1 })
	if code, body := env.admin(t, "POST", "/api/v1/devices/alice/ApplBOLT1/block"); code != 200 {
		t.Fatalf("block: HTTP %d %s", code, body)
	}
	expectGate(t, "Ping after a block", "PingResponse", answer(t, "blocked Ping", held), 200, eas.StatusDeviceBlocked)
}
