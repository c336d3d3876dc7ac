package eas

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/eas/mailsync"
	"github.com/easgate/easgate/eas/push"
	"github.com/easgate/easgate/wbxml"
)

// Defaults of the Ping settings of Config (the digest §3.7: Exchange's
// 60–3540 s; grommunio polls every 30 s).
const (
	DefaultPingMinHeartbeat = 60 * time.Second
	DefaultPingMaxHeartbeat = 3540 * time.Second
	DefaultPingMaxFolders   = 300
	DefaultPingPollInterval = 30 * time.Second
)

// Ping statuses (MS-ASCMD 2.2.3.177.10).
const (
	pingExpired          = 1 // the heartbeat ended with no changes
	pingChanges          = 2 // changes in the listed folders
	pingMissingParams    = 3 // empty Ping and nothing cached
	pingSyntaxError      = 4
	pingBadHeartbeat     = 5 // HeartbeatInterval gives the nearest limit
	pingTooManyFolders   = 6 // MaxFolders gives the limit
	pingHierarchyChanged = 7 // run FolderSync
)

// pingClasses are the Class values of MS-ASCMD 2.2.3.27.4.
var pingClasses = []string{"Email", "Calendar", "Contacts", "Tasks", "Notes"}

// pingParams are a Ping's parameters, as sent or as cached for an empty
// Ping (MS-ASCMD 2.2.1.13: the server keeps the last ones per device).
type pingParams struct {
	Heartbeat int          `json:"hb,omitempty"` // seconds; 0 when not given
	Folders   []pingFolder `json:"f,omitempty"`
}

type pingFolder struct {
	ID    string `json:"id"`
	Class string `json:"c"`
}

// pinger runs the Ping command. afterFunc starts the heartbeat timer
// (time.AfterFunc outside tests); waiting, when set, is called each time a
// Ping starts waiting: first, and again after a wake-up that was no news
// to its device.
type pinger struct {
	s         *Server
	eng       *mailsync.Engine
	hier      *hierarchy.Engine
	min       time.Duration
	max       time.Duration
	maxFold   int
	afterFunc func(d time.Duration, f func()) (stop func())
	waiting   func(user, device string)
}

// registerPing registers Ping when the server has a mail store and a
// device store (sync states and the cached request live there).
func (s *Server) registerPing() {
	if s.cfg.Mail == nil || s.cfg.Devices == nil {
		return
	}
	s.mustHandle("Ping", s.newPinger().ping)
}

// newPinger returns the Ping command with the Config's settings, zero
// ones replaced by the defaults.
func (s *Server) newPinger() *pinger {
	return &pinger{
		s:         s,
		eng:       &mailsync.Engine{Store: s.cfg.Devices, Logger: s.log, Now: s.cfg.Now},
		hier:      s.hierarchyEngine(),
		min:       positiveOr(s.cfg.PingMinHeartbeat, DefaultPingMinHeartbeat),
		max:       positiveOr(s.cfg.PingMaxHeartbeat, DefaultPingMaxHeartbeat),
		maxFold:   positiveOr(s.cfg.PingMaxFolders, DefaultPingMaxFolders),
		afterFunc: afterFunc,
	}
}

// afterFunc is time.AfterFunc with a stop function that says nothing.
func afterFunc(d time.Duration, f func()) (stop func()) {
	t := time.AfterFunc(d, f)
	return func() { t.Stop() }
}

// positiveOr returns v, or def when v is not positive.
func positiveOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// pingStatus is a Ping response with only a status.
func pingStatus(status int) Response {
	return Response{Element: wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, strconv.Itoa(status)))}
}

// errPingSyntax is the cause logged with Status 4.
var errPingSyntax = errors.New("malformed Ping")

// parsePing reads a Ping request (MS-ASCMD 2.2.3.88.1, 2.2.3.69.1). A nil
// body gives empty parameters.
func parsePing(body *wbxml.Element) (pingParams, error) {
	var p pingParams
	if body == nil {
		return p, nil
	}
	if hb := body.Child(wbxml.PingHeartbeatInterval); hb != nil {
		n, err := strconv.Atoi(strings.TrimSpace(hb.Value()))
		if err != nil || n <= 0 {
			return p, fmt.Errorf("%w: HeartbeatInterval %q", errPingSyntax, hb.Value())
		}
		p.Heartbeat = n
	}
	if fs := body.Child(wbxml.PingFolders); fs != nil {
		list := fs.ChildrenOf(wbxml.PingFolder)
		if len(list) == 0 {
			return p, fmt.Errorf("%w: Folders without Folder", errPingSyntax)
		}
		for _, f := range list {
			id := strings.TrimSpace(f.ChildText(wbxml.PingId))
			class := strings.TrimSpace(f.ChildText(wbxml.PingClass))
			if id == "" || !slices.Contains(pingClasses, class) {
				return p, fmt.Errorf("%w: Folder Id %q Class %q", errPingSyntax, id, class)
			}
			if !slices.ContainsFunc(p.Folders, func(x pingFolder) bool { return x.ID == id }) {
				p.Folders = append(p.Folders, pingFolder{ID: id, Class: class})
			}
		}
	}
	return p, nil
}

// ping is the Ping command (MS-ASCMD 2.2.1.13, the digest §3.7). It
// checks the request (Status 3–7), answers 2 at once when a folder has
// changes the device has not synced, and otherwise waits on the user's
// shared watcher (push.Hub: IMAP IDLE on the Inbox, a poll of the
// folders' change marks every PingPollInterval). Every wake-up is
// confirmed with the device's own sync state (its own Sync changes do not
// count), so Status 2 names exactly the folders a Sync would bring
// something for; a change of the folder list gives Status 7. The wait
// ends with Status 1 at the heartbeat, when a newer Ping (or hanging Sync)
// of the same device arrives on any instance (the digest: "answer it with
// status 1 or just close it"; Status 1 tells the phone nothing changed,
// which is true of this one), or when the gateway shuts down. An
// administrator's block or wipe ends it with the gate's answer (403,
// 449 / Status 129, 140), a wake with Status 2 for all its folders. No
// policy key is needed (the gate exempts Ping).
func (p *pinger) ping(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
	store := p.s.cfg.Devices
	sent, err := parsePing(body)
	if err != nil {
		p.s.log.LogAttrs(ctx, slog.LevelInfo, "ping refused", slog.String("user", req.User),
			slog.String("device", req.DeviceID), slog.String("cause", err.Error()))
		return pingStatus(pingSyntaxError), nil
	}
	params := sent
	if sent.Heartbeat == 0 || sent.Folders == nil {
		// Parameters left out are the ones of the last Ping.
		raw, err := store.GetCachedRequest(ctx, req.User, req.DeviceID, devices.RequestPing)
		switch {
		case errors.Is(err, devices.ErrNotFound):
		case err != nil:
			return Response{}, err
		default:
			var cached pingParams
			if err := json.Unmarshal(raw, &cached); err == nil {
				if params.Heartbeat == 0 {
					params.Heartbeat = cached.Heartbeat
				}
				if params.Folders == nil {
					params.Folders = cached.Folders
				}
			}
		}
		if params.Heartbeat == 0 || len(params.Folders) == 0 {
			return pingStatus(pingMissingParams), nil
		}
	}
	hb := time.Duration(params.Heartbeat) * time.Second
	if hb < p.min || hb > p.max {
		limit := p.min
		if hb > p.max {
			limit = p.max
		}
		return Response{Element: wbxml.E(wbxml.PingPing,
			wbxml.T(wbxml.PingStatus, strconv.Itoa(pingBadHeartbeat)),
			wbxml.T(wbxml.PingHeartbeatInterval, strconv.Itoa(int(limit/time.Second))))}, nil
	}
	if len(params.Folders) > p.maxFold {
		return Response{Element: wbxml.E(wbxml.PingPing,
			wbxml.T(wbxml.PingStatus, strconv.Itoa(pingTooManyFolders)),
			wbxml.T(wbxml.PingMaxFolders, strconv.Itoa(p.maxFold)))}, nil
	}
	if body != nil {
		raw, err := json.Marshal(params)
		if err != nil {
			return Response{}, err
		}
		if err := store.PutCachedRequest(ctx, req.User, req.DeviceID, devices.RequestPing, raw); err != nil {
			return Response{}, err
		}
	}

	// A newer Ping of the device ends this one from here on.
	w, err := p.s.broker.Begin(ctx, push.Key{User: req.User, Device: req.DeviceID})
	if err != nil {
		return Response{}, err
	}
	cw, res, err := p.begin(ctx, req, params)
	if err != nil || cw == nil || res.done() {
		if cw != nil {
			cw.close()
		}
		w.End()
		if err != nil {
			return Response{}, err
		}
		return p.answer(ctx, req, cw, res)
	}
	// Nothing to report yet: the wait may be parked (Response.Later).
	return Response{Later: func(ctx context.Context, answer func(Response, error)) {
		cw.wait(ctx, w, func(res waitResult, err error) {
			defer p.s.recoverAnswer(req, answer)
			cw.close()
			w.End()
			if err != nil {
				answer(Response{}, err)
				return
			}
			answer(p.answer(ctx, req, cw, res))
		})
	}}, nil
}

// begin prepares a Ping's wait and checks its folders once. A nil
// changeWait means the device's folders are not what it thinks (Status
// 7); otherwise the caller closes it.
func (p *pinger) begin(ctx context.Context, req *Request, params pingParams) (*changeWait, waitResult, error) {
	store := p.s.cfg.Devices
	sess, err := req.Mailbox(ctx)
	if err != nil {
		return nil, waitResult{}, err
	}
	h, err := hierarchy.Load(ctx, store, req.User, req.DeviceID)
	if errors.Is(err, devices.ErrNotFound) {
		return nil, waitResult{hierarchy: true}, nil
	}
	if err != nil {
		return nil, waitResult{}, err
	}
	var watched []watchedFolder
	for _, f := range params.Folders {
		hf, ok := h.Folder(f.ID)
		if !ok {
			return nil, waitResult{hierarchy: true}, nil
		}
		if !hf.NoSelect {
			watched = append(watched, watchedFolder{sid: f.ID, folder: hf.ID})
		}
	}
	cw := &changeWait{s: p.s, eng: p.eng, req: req, sess: sess, watched: watched,
		hb: time.Duration(params.Heartbeat) * time.Second, afterFunc: p.afterFunc, waiting: p.waiting,
		hierarchy: func(ctx context.Context) (bool, error) { return p.hier.Pending(ctx, sess, req.User, req.DeviceID) }}
	res, err := cw.begin(ctx)
	return cw, res, err
}

// answer turns how a Ping's wait ended into its response. cw is nil when
// the wait never began (the folders were not the device's).
func (p *pinger) answer(ctx context.Context, req *Request, cw *changeWait, res waitResult) (Response, error) {
	switch {
	case res.reason == push.DeviceChanged:
		// An administrator blocked or wiped the device: the gate's
		// answer tells the phone (403, 449, Status 129/140).
		if err := p.s.admit(ctx, req); err != nil {
			return Response{}, err
		}
		return pingStatus(pingExpired), nil
	case res.reason == push.Wake:
		res.changed = nil
		for _, f := range cw.watched {
			res.changed = append(res.changed, f.sid)
		}
	case res.reason != 0:
		// Superseded or the gateway stopping: nothing changed that
		// this Ping knows of.
		return pingStatus(pingExpired), nil
	case res.gone, res.hierarchy:
		return pingStatus(pingHierarchyChanged), nil
	}
	if len(res.changed) == 0 {
		return pingStatus(pingExpired), nil
	}
	fe := wbxml.E(wbxml.PingFolders)
	for _, sid := range res.changed {
		fe.Add(wbxml.T(wbxml.PingFolder, sid))
	}
	return Response{Element: wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, strconv.Itoa(pingChanges)), fe)}, nil
}

// watchedFolder is one folder a Ping or hanging Sync watches.
type watchedFolder struct {
	sid    string // the device's CollectionId
	folder backend.FolderID
}

// changeWait is one request waiting for changes its device has not
// synced (Ping, hanging Sync): it subscribes to the user's shared
// watcher (push.Hub), checks every folder once, then re-checks the
// folders the watcher names until one has news, the heartbeat ends, or
// the wait is ended from outside (push.Wait). While it waits it holds no
// goroutine: the watcher, the heartbeat timer and the push.Wait call it
// back (see wait), so that a parked request costs a few small objects.
type changeWait struct {
	s         *Server
	eng       *mailsync.Engine
	req       *Request
	sess      backend.Session
	watched   []watchedFolder
	hb        time.Duration
	afterFunc func(d time.Duration, f func()) (stop func())
	waiting   func(user, device string)
	// hierarchy, when set, reports whether the folder list differs from
	// the device's (Ping Status 7); it is asked once at the start and
	// whenever the watcher saw the folder list change.
	hierarchy func(ctx context.Context) (bool, error)

	sub *push.Subscription // from begin
}

// waitResult is how a changeWait ended: with the CollectionIds that have
// news (in request order), with a folder gone or the folder list changed
// (the device's hierarchy is out of date), with a push.Reason, or with
// none of these at the heartbeat.
type waitResult struct {
	changed   []string
	gone      bool
	hierarchy bool
	reason    push.Reason
}

// done reports whether the result ends the wait.
func (r waitResult) done() bool { return r.gone || r.hierarchy || len(r.changed) > 0 }

// hierarchyChanged asks cw.hierarchy, if set.
func (cw *changeWait) hierarchyChanged(ctx context.Context) (waitResult, error) {
	if cw.hierarchy == nil {
		return waitResult{}, nil
	}
	changed, err := cw.hierarchy(ctx)
	return waitResult{hierarchy: changed}, err
}

// begin subscribes to the user's watcher, then checks the folder list and
// every folder once; the caller closes cw afterwards. Subscribed before
// the checks, a change after them is reported to wait.
func (cw *changeWait) begin(ctx context.Context) (waitResult, error) {
	req := cw.req
	ids := make([]backend.FolderID, len(cw.watched))
	for i, f := range cw.watched {
		ids[i] = f.folder
	}
	sub, err := cw.s.hub.Watch(ctx, req.User, req.mailOpener(), ids)
	if err != nil {
		return waitResult{}, err
	}
	cw.sub = sub
	// A Sync of this device still running here may have changed IMAP
	// and not yet recorded it (busy.go).
	if err := cw.s.busy.wait(ctx, cw.key()); err != nil {
		return waitResult{}, err
	}
	if res, err := cw.hierarchyChanged(ctx); err != nil || res.done() {
		return res, err
	}
	return cw.check(ctx, cw.watched)
}

// key is the device's push.Key.
func (cw *changeWait) key() push.Key { return push.Key{User: cw.req.User, Device: cw.req.DeviceID} }

// close ends the subscription begin made, if any.
func (cw *changeWait) close() {
	if cw.sub != nil {
		cw.sub.Close()
	}
}

// run is begin, then wait when begin found nothing; done receives the
// outcome once, after the subscription was closed. An error means the
// client went away or a store failed.
func (cw *changeWait) run(ctx context.Context, w push.Wait, done func(waitResult, error)) {
	res, err := cw.begin(ctx)
	if err != nil || res.done() {
		cw.close()
		done(res, err)
		return
	}
	cw.wait(ctx, w, func(res waitResult, err error) {
		cw.close()
		done(res, err)
	})
}

// wait waits, after begin found nothing, until a watched folder has news
// for the device, the heartbeat ends, ctx ends or w is ended from
// outside, and then calls done once, on some goroutine. It returns at
// once: each event (the watcher's, the timer's, w's, ctx's) starts a step
// on a goroutine that ends with it (waitSteps).
func (cw *changeWait) wait(ctx context.Context, w push.Wait, done func(waitResult, error)) {
	req := cw.req
	// The answer comes after the heartbeat: this request may write
	// later than the server's WriteTimeout allows others.
	if err := req.ExtendWriteDeadline(cw.hb + writeSlack); err != nil {
		cw.s.log.LogAttrs(ctx, slog.LevelDebug, "cannot extend the write deadline",
			slog.String("cmd", req.Command), slog.String("err", err.Error()))
	}
	ws := &waitSteps{cw: cw, ctx: ctx, w: w, done: done}
	if cw.waiting != nil {
		cw.waiting(req.User, req.DeviceID)
	}
	// Every event only kicks; the step finds out what happened. The
	// stop functions are set before the first kick runs a step.
	ws.kicks.Add(1)
	ws.stopTimer = cw.afterFunc(cw.hb, func() {
		ws.expired.Store(true)
		ws.kick()
	})
	ws.stopW = w.AfterDone(ws.kick)
	ws.stopCtx = context.AfterFunc(ctx, ws.kick)
	cw.sub.OnChange(ws.kick)
	// A change signalled before OnChange is pending in the
	// subscription: look once.
	go ws.steps()
}

// waitSteps is a changeWait's wait in progress. kick runs steps on a
// goroutine unless one runs already, which then steps again for the kicks
// that arrived meanwhile: steps never overlap and no event is lost.
type waitSteps struct {
	cw      *changeWait
	ctx     context.Context
	w       push.Wait
	done    func(waitResult, error)
	expired atomic.Bool
	kicks   atomic.Int32 // kicks not yet looked at by a step

	// Set before the first step.
	stopTimer func()
	stopW     func() bool
	stopCtx   func() bool

	finished bool // only steps touch it
}

func (ws *waitSteps) kick() {
	if ws.kicks.Add(1) == 1 {
		go ws.steps()
	}
}

func (ws *waitSteps) steps() {
	defer func() {
		if v := recover(); v != nil {
			ws.cw.s.logPanic(ws.cw.req, v)
			if !ws.finished {
				ws.finish(waitResult{}, fmt.Errorf("eas: panic while waiting: %v", v))
			}
		}
	}()
	for {
		n := ws.kicks.Load()
		ws.step()
		if ws.kicks.Add(-n) == 0 {
			return
		}
	}
}

// step looks at what happened since the last one.
func (ws *waitSteps) step() {
	if ws.finished {
		return
	}
	cw, ctx := ws.cw, ws.ctx
	if err := ctx.Err(); err != nil {
		ws.finish(waitResult{}, err)
		return
	}
	select {
	case <-ws.w.Done():
		ws.finish(waitResult{reason: ws.w.Reason()}, nil)
		return
	default:
	}
	if ws.expired.Load() {
		ws.finish(waitResult{}, nil)
		return
	}
	// What the watcher saw may be the device's own change, not yet in
	// its sync state: look again once its commands are done (busy.go).
	if cw.s.busy.later(cw.key(), ws.kick) {
		return
	}
	moved, hier := cw.sub.Take()
	if len(moved) == 0 && !hier {
		return
	}
	if hier {
		if res, err := cw.hierarchyChanged(ctx); err != nil || res.done() {
			ws.finish(res, err)
			return
		}
	}
	var fs []watchedFolder
	for _, f := range cw.watched {
		if slices.Contains(moved, f.folder) {
			fs = append(fs, f)
		}
	}
	if res, err := cw.check(ctx, fs); err != nil || res.done() {
		ws.finish(res, err)
		return
	}
	if cw.waiting != nil {
		cw.waiting(cw.req.User, cw.req.DeviceID)
	}
}

// finish ends the wait: no more callbacks, then done.
func (ws *waitSteps) finish(res waitResult, err error) {
	ws.finished = true
	ws.cw.sub.OnChange(nil)
	ws.stopTimer()
	ws.stopW()
	ws.stopCtx()
	ws.done(res, err)
}

// writeSlack is the time a waiting request gets beyond its heartbeat to
// check and write its answer.
const writeSlack = time.Minute

// check looks for news in the folders.
func (cw *changeWait) check(ctx context.Context, fs []watchedFolder) (waitResult, error) {
	var res waitResult
	for _, f := range fs {
		c, gone, err := cw.changed(ctx, f)
		if err != nil {
			return waitResult{}, err
		}
		if gone {
			return waitResult{gone: true}, nil
		}
		if c {
			res.changed = append(res.changed, f.sid)
		}
	}
	return res, nil
}

// mailOpener opens the request's user's mailbox with its credentials,
// for the user's shared watcher (which outlives the request).
func (r *Request) mailOpener() push.Opener {
	m := r.mail
	return func(ctx context.Context) (backend.Session, error) {
		if m == nil || m.store == nil {
			return nil, errNoMailStore
		}
		return m.store.Open(ctx, m.user, m.password)
	}
}

// changed reports whether the folder has changes the device has not
// synced: what a Sync with the device's current key and filter would
// bring (mailsync.Engine.Estimate). A folder the device never synced has
// none (the digest §3.7: some iOS builds Ping before their first Sync; a
// change reported then loops). gone reports that the folder no longer
// exists (Status 7).
func (cw *changeWait) changed(ctx context.Context, f watchedFolder) (changed, gone bool, err error) {
	req, sess, p := cw.req, cw.sess, cw
	latest, err := p.s.cfg.Devices.LatestSyncState(ctx, req.User, req.DeviceID, f.sid)
	if errors.Is(err, devices.ErrNotFound) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	key, err := p.eng.CurrentKey(ctx, req.User, req.DeviceID, f.sid)
	if errors.Is(err, mailsync.ErrInvalidKey) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	filter, err := mailsync.FilterType(latest.Data)
	if err != nil {
		return false, false, err
	}
	n, status, err := p.eng.Estimate(ctx, &mailsync.Request{
		User: req.User, Device: req.DeviceID, Collection: f.sid, Folder: f.folder, Session: sess,
		SyncKey: key, Options: mailsync.Options{FilterType: filter, GetChanges: true},
	})
	if err != nil {
		return false, false, err
	}
	switch status {
	case mailsync.EstimateSuccess:
		return n > 0, false, nil
	case mailsync.EstimateInvalidCollection:
		return false, true, nil
	case mailsync.EstimateInvalidKey:
		// UIDVALIDITY changed: the device's next Sync starts over.
		return true, false, nil
	}
	return false, false, nil
}
