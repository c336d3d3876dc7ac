package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easgate/easgate/eas/easclient"
)

// syncOptions are what every device asks of Sync: all mail, plain-text
// bodies cut at 200 bytes, as phones ask for a preview-sized body.
var syncOptions = easclient.SyncOptions{WindowSize: 100, FilterType: "0", BodyType: 1, TruncationSize: 200}

// benchUser is one IMAP account and the appends made to its INBOX.
type benchUser struct {
	name, password string

	mu      sync.Mutex
	appends []appendRecord // in the order they were started
}

// appendRecord is one APPEND: when it was sent, when the server said OK
// (zero until then), and whether it failed.
type appendRecord struct {
	start, done time.Time
	failed      bool
}

// begin records an APPEND about to be sent and returns its index.
func (u *benchUser) begin(now time.Time) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.appends = append(u.appends, appendRecord{start: now})
	return len(u.appends) - 1
}

// end records the outcome of APPEND i.
func (u *benchUser) end(i int, now time.Time, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		u.appends[i].failed = true
	} else {
		u.appends[i].done = now
	}
}

// indexAfter returns the index just past the n-th append that has not
// failed: where the appends a device has not received begin, once its
// Syncs brought it n new messages. The tool is the only source of mail,
// and IMAP gives appended messages ascending UIDs, so the n messages a
// device received are the first n appends (two appends to one user at
// the same moment may swap places, which changes nothing here).
func (u *benchUser) indexAfter(n int) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	i := 0
	for ; i < len(u.appends) && n > 0; i++ {
		if !u.appends[i].failed {
			n--
		}
	}
	return i
}

// firstAfter returns when the first successful append at index seen or
// later completed (when it was sent, if the wake overtook the OK), and
// whether there is one.
func (u *benchUser) firstAfter(seen int) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, a := range u.appends[min(seen, len(u.appends)):] {
		switch {
		case a.failed:
		case a.done.IsZero():
			return a.start, true
		default:
			return a.done, true
		}
	}
	return time.Time{}, false
}

// unseen counts the successful, completed appends at index seen or later.
func (u *benchUser) unseen(seen int) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, a := range u.appends[min(seen, len(u.appends)):] {
		if !a.failed && !a.done.IsZero() {
			n++
		}
	}
	return n
}

// device is one phone: an EAS client with its INBOX and sync key.
type device struct {
	u     *benchUser
	c     *easclient.Client
	inbox string
	key   string // INBOX SyncKey
	fkey  string // FolderSync SyncKey
	// received counts the messages the device's Syncs added since
	// setup; seen is where the appends it has not received begin
	// (indexAfter).
	received int
	seen     atomic.Int64
}

// setup does what a phone does before it can Ping: Provision, FolderSync
// and the first Syncs of the INBOX.
func (d *device) setup(ctx context.Context) error {
	pr, err := d.c.Provision(ctx, &easclient.DeviceInformation{Model: "easbench", OS: "easbench"})
	if err != nil {
		return err
	}
	if pr.PolicyKey == 0 && pr.Phase1.HTTPStatus == http.StatusOK && pr.Phase1.Status() == 1 && pr.TemporaryKey != 0 {
		// Phase 1 handed out a policy and phase 2 did not confirm it.
		s := 0
		if pr.Phase2 != nil {
			s = pr.Phase2.HTTPStatus
		}
		return fmt.Errorf("Provision: phase 2 refused (HTTP %d, body %v)", s, pr.Phase2.Tree)
	}
	r, fc, err := d.c.FolderSync(ctx, "0")
	if err != nil {
		return err
	}
	if r.HTTPStatus != http.StatusOK || fc.Status != 1 {
		return fmt.Errorf("FolderSync: HTTP %d, Status %d", r.HTTPStatus, fc.Status)
	}
	in, ok := fc.FolderOfType(easclient.FolderTypeInbox)
	if !ok {
		return errors.New("FolderSync: no INBOX")
	}
	d.inbox, d.key, d.fkey = in.ServerID, "0", fc.SyncKey
	// Whatever the INBOX holds before the mail phase is not counted.
	_, err = d.sync(ctx)
	return err
}

// folderSync answers Ping Status 7 as a phone does: FolderSync with the
// device's key.
func (d *device) folderSync(ctx context.Context) error {
	r, fc, err := d.c.FolderSync(ctx, d.fkey)
	if err != nil {
		return err
	}
	if r.HTTPStatus != http.StatusOK || fc.Status != 1 {
		return fmt.Errorf("FolderSync: HTTP %d, Status %d", r.HTTPStatus, fc.Status)
	}
	d.fkey = fc.SyncKey
	return nil
}

// sync brings the INBOX up to date: Sync until nothing more is
// available. The first Sync of a new key "0" only gets a key. It returns
// how many messages were added.
func (d *device) sync(ctx context.Context) (added int, err error) {
	for {
		first := d.key == "0"
		r, res, err := d.c.Sync(ctx, d.key, d.inbox, syncOptions)
		if err != nil {
			return added, err
		}
		if r.HTTPStatus != http.StatusOK {
			return added, fmt.Errorf("Sync: HTTP %d", r.HTTPStatus)
		}
		if res.Empty {
			return added, nil
		}
		col, ok := res.Collection(d.inbox)
		if !ok || col.Status != 1 || col.SyncKey == "" {
			return added, fmt.Errorf("Sync: Status %d, collection Status %d", res.Status, col.Status)
		}
		d.key = col.SyncKey
		added += len(col.Added)
		if !first && !col.MoreAvailable {
			return added, nil
		}
	}
}

// counters are what the devices and the appender count.
type counters struct {
	appends, appendErrors, appendSkipped      atomic.Int64
	wakes, spurious, expired, hierarchy       atomic.Int64
	pingErrors, syncErrors                    atomic.Int64
	pinging                                   atomic.Int64
	mu                                        sync.Mutex
	other                                     map[int]int64
	firstPingErr, firstSyncErr, firstAppendEr error
}

func (c *counters) otherStatus(s int) {
	c.mu.Lock()
	if c.other == nil {
		c.other = map[int]int64{}
	}
	c.other[s]++
	c.mu.Unlock()
}

// note keeps the first error of a kind for the report.
func (c *counters) note(first *error, err error) {
	c.mu.Lock()
	if *first == nil {
		*first = err
	}
	c.mu.Unlock()
}

// pingLoop holds a Ping until ctx ends: on Status 2 it records the latency
// from the first APPEND the device has not synced, Syncs, and Pings again.
func (d *device) pingLoop(ctx context.Context, hb int, lat *latencies, cnt *counters) {
	folder := easclient.PingFolder{ID: d.inbox, Class: "Email"}
	pause := func() {
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	for ctx.Err() == nil {
		cnt.pinging.Add(1)
		r, res, err := d.c.Ping(ctx, hb, folder)
		now := time.Now()
		cnt.pinging.Add(-1)
		if ctx.Err() != nil {
			return
		}
		if err == nil && r.HTTPStatus != http.StatusOK {
			err = fmt.Errorf("Ping: HTTP %d", r.HTTPStatus)
		}
		if err != nil {
			cnt.pingErrors.Add(1)
			cnt.note(&cnt.firstPingErr, err)
			pause()
			continue
		}
		switch res.Status {
		case 1:
			cnt.expired.Add(1)
		case 2:
			cnt.wakes.Add(1)
			if at, ok := d.u.firstAfter(int(d.seen.Load())); ok {
				lat.add(now.Sub(at))
			} else {
				cnt.spurious.Add(1)
			}
			added, err := d.sync(ctx)
			d.received += added
			d.seen.Store(int64(d.u.indexAfter(d.received)))
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				cnt.syncErrors.Add(1)
				cnt.note(&cnt.firstSyncErr, err)
				pause()
			}
		case 7:
			cnt.hierarchy.Add(1)
			if err := d.folderSync(ctx); err != nil && ctx.Err() == nil {
				cnt.syncErrors.Add(1)
				cnt.note(&cnt.firstSyncErr, err)
				pause()
			}
		default:
			cnt.otherStatus(res.Status)
			pause()
		}
	}
}

// testMessage is the mail appended: small, unique, plain text.
func testMessage(user string, n int64, now time.Time) string {
	return fmt.Sprintf("From: easbench <bench@example.test>\r\nTo: %s@example.test\r\n"+
		"Subject: easbench %d\r\nDate: %s\r\nMessage-ID: <easbench-%d-%d@example.test>\r\n"+
		"Content-Type: text/plain; charset=utf-8\r\n\r\nLoad test message %d.\r\n",
		user, n, now.Format(time.RFC1123Z), now.UnixNano(), n, n)
}

// loginIMAP opens a connection of the user's own, closed when ctx ends or
// done is called.
func loginIMAP(ctx context.Context, addr string, u *benchUser) (c *imapclient.Client, done func(), err error) {
	c, err = imapclient.DialInsecure(addr, nil)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	done = func() {
		stop()
		c.Close()
	}
	if err := c.Login(u.name, u.password).Wait(); err != nil {
		done()
		return nil, nil, fmt.Errorf("IMAP LOGIN %s: %w", u.name, err)
	}
	return c, done, nil
}

// appendMail APPENDs one message to the user's INBOX on a fresh IMAP
// connection (the gateway's connections are not touched).
func appendMail(ctx context.Context, addr string, u *benchUser, n int64) error {
	c, done, err := loginIMAP(ctx, addr, u)
	if err != nil {
		return err
	}
	defer done()
	msg := testMessage(u.name, n, time.Now())
	i := u.begin(time.Now())
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	_, werr := cmd.Write([]byte(msg))
	cerr := cmd.Close()
	_, err = cmd.Wait()
	err = errors.Join(werr, cerr, err)
	u.end(i, time.Now(), err)
	if err != nil {
		return fmt.Errorf("APPEND %s: %w", u.name, err)
	}
	c.Logout().Wait()
	return nil
}

// appenders bounds the APPENDs in flight.
const appenders = 16

// appendLoop appends at rate to random users until ctx ends, and waits
// for the APPENDs in flight.
func appendLoop(ctx context.Context, addr string, users []*benchUser, rate float64, cnt *counters) {
	if rate <= 0 {
		<-ctx.Done()
		return
	}
	sem := make(chan struct{}, appenders)
	var wg sync.WaitGroup
	defer wg.Wait()
	interval := time.Duration(float64(time.Second) / rate)
	next := time.Now()
	var n int64
	for {
		next = next.Add(interval)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(next)):
		}
		select {
		case sem <- struct{}{}:
		default:
			cnt.appendSkipped.Add(1)
			continue
		}
		n++
		u := users[rand.IntN(len(users))]
		wg.Add(1)
		go func(n int64) {
			defer wg.Done()
			defer func() { <-sem }()
			// The APPEND is not cut short by the end of the mail phase.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			if err := appendMail(actx, addr, u, n); err != nil {
				cnt.appendErrors.Add(1)
				cnt.note(&cnt.firstAppendEr, err)
				return
			}
			cnt.appends.Add(1)
		}(n)
	}
}

// newUsers makes the users <prefix>00001….
func newUsers(cfg config) []*benchUser {
	users := make([]*benchUser, cfg.users)
	for i := range users {
		name := userName(cfg.prefix, i+1)
		pw := cfg.password
		if pw == "" {
			pw = name + "pw"
		}
		users[i] = &benchUser{name: name, password: pw}
	}
	return users
}

// newDevices makes cfg.pings devices spread over the users round-robin,
// all on one HTTP transport.
func newDevices(cfg config, users []*benchUser, easURL string) []*device {
	tr := &http.Transport{
		MaxIdleConns:        cfg.pings + cfg.setupConc + 16,
		MaxIdleConnsPerHost: cfg.pings + cfg.setupConc + 16,
		IdleConnTimeout:     time.Minute,
	}
	hc := &http.Client{Transport: tr}
	devs := make([]*device, cfg.pings)
	for i := range devs {
		u := users[i%len(users)]
		devs[i] = &device{u: u, c: &easclient.Client{
			BaseURL: easURL, User: u.name, Password: u.password,
			DeviceID: "easbench" + strconv.Itoa(i+1), DeviceType: "iPhone",
			UserAgent: "Apple-iPhone15C2/2201.108", HTTPClient: hc,
		}}
	}
	return devs
}

// warmUp logs every user in over IMAP once and asks for the INBOX's
// STATUS, conc users at a time, before any device exists: a brand-new
// Dovecot Maildir that several sessions create at once can get a second
// UIDVALIDITY, which would void the first devices' sync keys (Status 3).
// It also checks the credentials.
func warmUp(ctx context.Context, addr string, users []*benchUser, conc int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan *benchUser)
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for u := range work {
				if err := statusInbox(ctx, addr, u); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for _, u := range users {
		select {
		case work <- u:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}

func statusInbox(ctx context.Context, addr string, u *benchUser) error {
	c, done, err := loginIMAP(ctx, addr, u)
	if err != nil {
		return err
	}
	defer done()
	if _, err := c.Status("INBOX", &imap.StatusOptions{UIDValidity: true}).Wait(); err != nil {
		return fmt.Errorf("IMAP STATUS INBOX of %s: %w", u.name, err)
	}
	// LIST makes Dovecot create the auto = subscribe folders now rather
	// than under the first devices' FolderSync (which would then see the
	// hierarchy change and get Ping Status 7).
	if _, err := c.List("", "*", nil).Collect(); err != nil {
		return fmt.Errorf("IMAP LIST of %s: %w", u.name, err)
	}
	return c.Logout().Wait()
}

// setupAll runs setup on every device, conc at a time, and stops at the
// first failure.
func setupAll(ctx context.Context, devs []*device, conc int, logw io.Writer) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan *device)
	var wg sync.WaitGroup
	var done atomic.Int64
	for range conc {
		wg.Go(func() {
			for d := range work {
				if err := d.setup(ctx); err != nil {
					cancel(fmt.Errorf("setting up %s of %s: %w", d.c.DeviceID, d.u.name, err))
					return
				}
				done.Add(1)
			}
		})
	}
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
feed:
	for _, d := range devs {
		for {
			select {
			case work <- d:
				continue feed
			case <-ctx.Done():
				break feed
			case <-tick.C:
				fmt.Fprintf(logw, "easbench: setup %d/%d devices\n", done.Load(), len(devs))
			}
		}
	}
	close(work)
	wg.Wait()
	return context.Cause(ctx)
}

// maxListed bounds the devices never woken that the result names.
const maxListed = 500

// bench runs the load: setup, Pings, settle, mail, drain.
func bench(ctx context.Context, cfg config, logw io.Writer) (*result, error) {
	res := &result{Users: cfg.users, Pings: cfg.pings, Rate: cfg.rate, Duration: cfg.duration, Heartbeat: cfg.heartbeat}
	users := newUsers(cfg)
	var t *target
	if cfg.spawn {
		pw := make(map[string]string, len(users))
		for _, u := range users {
			pw[u.name] = u.password
		}
		var err error
		if t, err = spawnTarget(ctx, cfg, pw, logw); err != nil {
			return nil, err
		}
		res.Spawned, res.GatewayLog = t.spawned, t.gatewayLog
		res.DovecotProcesses, res.DovecotClients = t.processes, t.clients
	} else {
		t = externalTarget(cfg)
	}
	measured, err := drive(ctx, cfg, t, users, res, logw)
	err = errors.Join(err, t.stop())
	if !measured {
		return nil, err
	}
	return res, err
}

// drive runs the phases against a target and fills res; measured reports
// that it got as far as the end of the mail phase.
func drive(ctx context.Context, cfg config, t *target, users []*benchUser, res *result, logw io.Writer) (measured bool, err error) {
	devs := newDevices(cfg, users, t.easURL)
	start := time.Now()
	if err := warmUp(ctx, t.imapAddr, users, cfg.setupConc); err != nil {
		return false, err
	}
	fmt.Fprintf(logw, "easbench: %d users checked over IMAP in %v; setting up %d devices\n", len(users), time.Since(start).Round(time.Millisecond), len(devs))
	if err := setupAll(ctx, devs, cfg.setupConc, logw); err != nil {
		return false, err
	}
	res.Setup = time.Since(start)
	fmt.Fprintf(logw, "easbench: setup done in %v; starting %d Pings at %.0f/s\n", res.Setup.Round(time.Millisecond), len(devs), cfg.ramp)

	var cnt counters
	var lat latencies
	var phase atomic.Value
	phase.Store("ramp")
	pingStart := time.Now()
	samplesDone := make(chan struct{})
	sctx, stopSampling := context.WithCancel(ctx)
	var samples []sample
	take := func() sample {
		s := sample{At: time.Since(pingStart).Round(time.Millisecond), Phase: phase.Load().(string),
			Pinging: int(cnt.pinging.Load()), ServerIMAP: -1, MaxPerUser: -1}
		var rss int64
		s.Goroutines, rss = metrics(sctx, t.adminURL, t.adminToken)
		if s.RSS = procStatus(t.pid, "VmRSS"); s.RSS < 0 {
			s.RSS = rss
		}
		s.GatewayIMAP = imapConnections(t.pid, t.imapAddr)
		if t.dovecot != nil {
			if counts, err := t.dovecot.ConnectionCounts(); err == nil {
				s.ServerIMAP, s.MaxPerUser = 0, 0
				for _, n := range counts {
					s.ServerIMAP += n
					s.MaxPerUser = max(s.MaxPerUser, n)
				}
			}
		}
		return s
	}
	var smu sync.Mutex
	record := func(s sample) {
		smu.Lock()
		samples = append(samples, s)
		smu.Unlock()
	}
	go func() {
		defer close(samplesDone)
		tick := time.NewTicker(cfg.sample)
		defer tick.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-tick.C:
				record(take())
			}
		}
	}()

	pctx, stopPings := context.WithCancel(ctx)
	var pings sync.WaitGroup
	hb := int(cfg.heartbeat / time.Second)
	interval := time.Duration(float64(time.Second) / cfg.ramp)
	next := time.Now()
	for _, d := range devs {
		d := d
		pings.Go(func() { d.pingLoop(pctx, hb, &lat, &cnt) })
		next = next.Add(interval)
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(next)):
		}
	}
	res.Ramp = time.Since(pingStart)
	phase.Store("settle")
	fmt.Fprintf(logw, "easbench: %d Pings sent in %v; settling for %v\n", len(devs), res.Ramp.Round(time.Millisecond), cfg.settle)
	select {
	case <-ctx.Done():
	case <-time.After(cfg.settle):
	}
	steady := take()
	record(steady)
	res.Steady = steady

	phase.Store("mail")
	fmt.Fprintf(logw, "easbench: appending %.2f/s for %v\n", cfg.rate, cfg.duration)
	mctx, stopMail := context.WithTimeout(ctx, cfg.duration)
	appendLoop(mctx, t.imapAddr, users, cfg.rate, &cnt)
	stopMail()

	phase.Store("drain")
	unseen := func() int64 {
		var n int64
		for _, d := range devs {
			n += int64(d.u.unseen(int(d.seen.Load())))
		}
		return n
	}
	deadline := time.Now().Add(cfg.drain)
	for unseen() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(100 * time.Millisecond)
	}
	res.Unseen = unseen()
	for _, d := range devs {
		if n := d.u.unseen(int(d.seen.Load())); n > 0 && len(res.UnseenDevices) < maxListed {
			at, _ := d.u.firstAfter(int(d.seen.Load()))
			res.UnseenDevices = append(res.UnseenDevices, fmt.Sprintf("%s of %s: %d appends, the first done at %s",
				d.c.DeviceID, d.u.name, n, at.UTC().Format("15:04:05.000")))
		}
	}
	record(take())
	res.PeakRSSHWM = procStatus(t.pid, "VmHWM")
	stopSampling()
	<-samplesDone
	stopPings()
	pings.Wait()

	res.Samples = samples
	unknown := sample{RSS: -1, Goroutines: -1, GatewayIMAP: -1, ServerIMAP: -1, MaxPerUser: -1}
	res.Peak, res.MailPeak = unknown, unknown
	for _, s := range samples {
		res.Peak = peakOf(res.Peak, s)
		if s.Phase == "mail" || s.Phase == "drain" {
			res.MailPeak = peakOf(res.MailPeak, s)
		}
	}
	res.Appends, res.AppendErrors, res.AppendSkipped = cnt.appends.Load(), cnt.appendErrors.Load(), cnt.appendSkipped.Load()
	res.Wakes, res.Spurious, res.Expired = cnt.wakes.Load(), cnt.spurious.Load(), cnt.expired.Load()
	res.HierarchyChanged = cnt.hierarchy.Load()
	res.PingErrors, res.SyncErrors = cnt.pingErrors.Load(), cnt.syncErrors.Load()
	res.OtherStatus = cnt.other
	res.Latency = lat.summary()
	var errs []string
	for _, e := range []error{cnt.firstPingErr, cnt.firstSyncErr, cnt.firstAppendEr} {
		if e != nil {
			errs = append(errs, e.Error())
		}
	}
	if len(errs) > 0 {
		fmt.Fprintf(logw, "easbench: first errors: %s\n", strings.Join(errs, "; "))
	}
	return true, ctx.Err()
}
