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

// pinger runs the Ping command. after and tick make the heartbeat timer
// and the poll ticker (time.NewTimer and time.NewTicker outside tests);
// waiting, when set, is called once a Ping starts waiting.
type pinger struct {
	s       *Server
	eng     *mailsync.Engine
	hier    *hierarchy.Engine
	broker  push.Broker
	min     time.Duration
	max     time.Duration
	maxFold int
	poll    time.Duration
	after   func(d time.Duration) (<-chan time.Time, func())
	tick    func(d time.Duration) (<-chan time.Time, func())
	waiting func(user, device string)
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
	p := &pinger{
		s:       s,
		eng:     &mailsync.Engine{Store: s.cfg.Devices, Logger: s.log, Now: s.cfg.Now},
		hier:    s.hierarchyEngine(),
		broker:  s.cfg.PingBroker,
		min:     positiveOr(s.cfg.PingMinHeartbeat, DefaultPingMinHeartbeat),
		max:     positiveOr(s.cfg.PingMaxHeartbeat, DefaultPingMaxHeartbeat),
		maxFold: positiveOr(s.cfg.PingMaxFolders, DefaultPingMaxFolders),
		poll:    positiveOr(s.cfg.PingPollInterval, DefaultPingPollInterval),
		after: func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTimer(d)
			return t.C, func() { t.Stop() }
		},
		tick: func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		},
	}
	if p.broker == nil {
		p.broker = &push.Registry{}
	}
	return p
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
// changes the device has not synced, and otherwise waits: IMAP IDLE on the
// Inbox when the mail session can, a poll of the folders' change marks
// every PingPollInterval for the rest. Every wake-up is confirmed with the
// device's own sync state (its own Sync changes do not count), so Status 2
// names exactly the folders a Sync would bring something for. The wait
// ends with Status 1 at the heartbeat, or when a newer Ping of the same
// device arrives (the digest: "answer it with status 1 or just close it";
// Status 1 tells the phone nothing changed, which is true of this one).
// No policy key is needed (the gate exempts Ping).
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
	w, err := p.broker.Begin(ctx, push.Key{User: req.User, Device: req.DeviceID})
	if err != nil {
		return Response{}, err
	}
	defer w.End()

	sess, err := req.Mailbox(ctx)
	if err != nil {
		return Response{}, err
	}
	h, err := hierarchy.Load(ctx, store, req.User, req.DeviceID)
	if errors.Is(err, devices.ErrNotFound) {
		return pingStatus(pingHierarchyChanged), nil
	}
	if err != nil {
		return Response{}, err
	}
	var watched []pingWatch
	for _, f := range params.Folders {
		hf, ok := h.Folder(f.ID)
		if !ok {
			return pingStatus(pingHierarchyChanged), nil
		}
		if !hf.NoSelect {
			watched = append(watched, pingWatch{sid: f.ID, folder: hf.ID, inbox: hf.Role == backend.RoleInbox})
		}
	}
	if changed, err := p.hier.Pending(ctx, sess, req.User, req.DeviceID); err != nil {
		return Response{}, err
	} else if changed {
		return pingStatus(pingHierarchyChanged), nil
	}
	status, folders, err := p.wait(ctx, req, sess, watched, hb, w)
	if err != nil {
		return Response{}, err
	}
	if status != pingChanges {
		return pingStatus(status), nil
	}
	fe := wbxml.E(wbxml.PingFolders)
	for _, sid := range folders {
		fe.Add(wbxml.T(wbxml.PingFolder, sid))
	}
	return Response{Element: wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, strconv.Itoa(pingChanges)), fe)}, nil
}

// pingWatch is one folder a Ping watches.
type pingWatch struct {
	sid    string // the device's CollectionId
	folder backend.FolderID
	inbox  bool
}

// marks are a folder's change marks (backend.Folder).
type marks struct {
	uidValidity   uint32
	uidNext       backend.UID
	messages      uint32
	highestModSeq uint64
}

// folderMarks lists the change marks of every folder in one call.
func folderMarks(ctx context.Context, sess backend.Session) (map[backend.FolderID]marks, error) {
	fs, err := sess.Folders(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[backend.FolderID]marks, len(fs))
	for _, f := range fs {
		m[f.ID] = marks{f.UIDValidity, f.UIDNext, f.Messages, f.HighestModSeq}
	}
	return m, nil
}

// since returns the marks as the snapshot Watcher.Watch compares with.
func (m marks) since() *backend.FolderState {
	return &backend.FolderState{UIDValidity: m.uidValidity, UIDNext: m.uidNext, Messages: m.messages, HighestModSeq: m.highestModSeq}
}

// wait checks the folders at once and then waits for a change the device
// has not synced. It returns the status (1, 2 or 7) and, for 2, the
// changed folders' CollectionIds in request order; an error when the
// client went away or the stores failed.
func (p *pinger) wait(ctx context.Context, req *Request, sess backend.Session, watched []pingWatch, hb time.Duration, w push.Wait) (int, []string, error) {
	// The marks are read before the first check, so a change between
	// the two is seen as a difference later.
	last, err := folderMarks(ctx, sess)
	if err != nil {
		return 0, nil, err
	}
	var changed []string
	for _, f := range watched {
		c, gone, err := p.changed(ctx, req, sess, f)
		if err != nil {
			return 0, nil, err
		}
		if gone {
			return pingHierarchyChanged, nil, nil
		}
		if c {
			changed = append(changed, f.sid)
		}
	}
	if len(changed) > 0 {
		return pingChanges, changed, nil
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	expired, stopTimer := p.after(hb)
	defer stopTimer()
	ticks, stopTicker := p.tick(p.poll)
	defer stopTicker()

	// IMAP IDLE on the Inbox, one Watch at a time; the loop below
	// confirms each wake-up and starts the next Watch.
	var inbox *pingWatch
	watcher, _ := sess.(backend.Watcher)
	for i := range watched {
		if watched[i].inbox && watcher != nil {
			inbox = &watched[i]
		}
	}
	woke := make(chan error, 1)
	watch := func(since *backend.FolderState) {
		go func() { woke <- watcher.Watch(ctx, inbox.folder, since) }()
	}
	watching := false
	if inbox != nil {
		if m, ok := last[inbox.folder]; ok {
			watch(m.since())
			watching = true
		}
	}
	if p.waiting != nil {
		p.waiting(req.User, req.DeviceID)
	}
	// Before returning, the watch goroutine must have ended (it holds
	// its own IMAP connection): cancel, then drain.
	defer func() {
		if watching {
			cancel()
			<-woke
		}
	}()

	check := func(fs []pingWatch) (int, []string, error) {
		var changed []string
		for _, f := range fs {
			c, gone, err := p.changed(ctx, req, sess, f)
			if err != nil {
				return 0, nil, err
			}
			if gone {
				return pingHierarchyChanged, nil, nil
			}
			if c {
				changed = append(changed, f.sid)
			}
		}
		if len(changed) > 0 {
			return pingChanges, changed, nil
		}
		return 0, nil, nil
	}

	for {
		select {
		case <-ctx.Done():
			return 0, nil, ctx.Err()
		case <-expired:
			return pingExpired, nil, nil
		case <-w.Superseded():
			return pingExpired, nil, nil
		case err := <-woke:
			watching = false
			switch {
			case err == nil:
			case errors.Is(err, backend.ErrUIDValidityChanged):
				// The device's UIDs are void: its next Sync resets.
				return pingChanges, []string{inbox.sid}, nil
			case errors.Is(err, backend.ErrFolderNotFound):
				return pingHierarchyChanged, nil, nil
			case ctx.Err() != nil:
				return 0, nil, ctx.Err()
			default:
				// Polling still covers the Inbox.
				p.s.log.LogAttrs(ctx, slog.LevelWarn, "ping: IMAP IDLE failed, polling the inbox",
					slog.String("user", req.User), slog.String("device", req.DeviceID), slog.String("err", err.Error()))
				continue
			}
			st, fs, err := check([]pingWatch{*inbox})
			if err != nil || st != 0 {
				return st, fs, err
			}
			// Nothing for this device (its own change): watch on
			// from the marks as they are now.
			now, err := folderMarks(ctx, sess)
			if err != nil {
				return 0, nil, err
			}
			m, ok := now[inbox.folder]
			if !ok {
				return pingHierarchyChanged, nil, nil
			}
			last[inbox.folder] = m
			watch(m.since())
			watching = true
		case <-ticks:
			now, err := folderMarks(ctx, sess)
			if err != nil {
				return 0, nil, err
			}
			var moved []pingWatch
			for _, f := range watched {
				m, ok := now[f.folder]
				if !ok {
					return pingHierarchyChanged, nil, nil
				}
				if m != last[f.folder] {
					moved = append(moved, f)
				}
			}
			st, fs, err := check(moved)
			if err != nil || st != 0 {
				return st, fs, err
			}
			last = now
		}
	}
}

// changed reports whether the folder has changes the device has not
// synced: what a Sync with the device's current key and filter would
// bring (mailsync.Engine.Estimate). A folder the device never synced has
// none (the digest §3.7: some iOS builds Ping before their first Sync; a
// change reported then loops). gone reports that the folder no longer
// exists (Status 7).
func (p *pinger) changed(ctx context.Context, req *Request, sess backend.Session, f pingWatch) (changed, gone bool, err error) {
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
