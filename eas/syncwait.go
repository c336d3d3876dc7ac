package eas

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/eas/mailsync"
	"github.com/easgate/easgate/eas/push"
	"github.com/easgate/easgate/wbxml"
)

// hangingSync runs Sync and, when a Sync that asks to wait (Wait in
// minutes, or HeartbeatInterval in seconds: MS-ASCMD 2.2.3.198,
// 2.2.3.88.2; the digest §3.4 "Heartbeat Sync") has nothing to report,
// holds it until one of its collections has changes the device has not
// synced, then runs it again and answers with them; at the end of the
// wait the answer is the empty one (HTTP 200, no body). It waits on the
// same machinery as Ping (changeWait: the user's shared watcher, the
// device's own sync state), and like a Ping it is ended by a newer Ping
// or hanging Sync of the device (empty answer), by an administrator's
// block or wipe (the gate's answer) or wake (run again), and by shutdown
// (empty answer).
type hangingSync struct {
	m         *mailSync
	min       time.Duration
	max       time.Duration
	afterFunc func(d time.Duration, f func()) (stop func())
	waiting   func(user, device string)
}

// hangingSyncHandler wraps the mail Sync handler with the wait; Sync is
// registered with it (registerMailSync).
func (s *Server) hangingSyncHandler(m *mailSync) Handler {
	return s.newHangingSync(m).sync
}

func (s *Server) newHangingSync(m *mailSync) *hangingSync {
	return &hangingSync{
		m:         m,
		min:       positiveOr(s.cfg.PingMinHeartbeat, DefaultPingMinHeartbeat),
		max:       positiveOr(s.cfg.PingMaxHeartbeat, DefaultPingMaxHeartbeat),
		afterFunc: afterFunc,
	}
}

// sync is the Sync handler with the wait.
func (hs *hangingSync) sync(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
	hb, refusal := hs.requested(body)
	if refusal != nil {
		return *refusal, nil
	}
	resp, err := hs.m.sync(ctx, req, body)
	if err != nil || !emptySync(resp) {
		return resp, err
	}
	if hb == 0 && body != nil && !body.Has(wbxml.AirSyncPartial) {
		return resp, nil // a full request that asks for no wait
	}
	// The cached request is now this one (or, for an empty or Partial
	// request, the one it stands for).
	cache, err := hs.cachedRequest(ctx, req)
	if err != nil {
		return Response{}, err
	}
	if hb == 0 && (body == nil || body.Has(wbxml.AirSyncPartial)) && cache != nil {
		hb, _ = hs.requested(cache)
	}
	if hb == 0 || cache == nil {
		return resp, nil
	}

	w, err := hs.m.s.broker.Begin(ctx, push.Key{User: req.User, Device: req.DeviceID})
	if err != nil {
		return Response{}, err
	}
	watched, err := hs.watched(ctx, req, cache)
	if err != nil || len(watched) == 0 {
		w.End()
		return resp, err
	}
	sess, err := req.Mailbox(ctx)
	if err != nil {
		w.End()
		return Response{}, err
	}
	again := withoutCommands(body)
	deadline := time.Now().Add(hb)
	// The wait may be parked (Response.Later), which must return at once:
	// the first look (cw.begin) reads IMAP, so it runs on a goroutine.
	return Response{Later: func(ctx context.Context, answer func(Response, error)) {
		var once sync.Once
		reply := func(resp Response, err error) {
			once.Do(func() {
				w.End()
				answer(resp, err)
			})
		}
		go hs.wait(ctx, req, w, sess, watched, again, deadline, reply)
	}}, nil
}

// wait holds a hanging Sync until deadline and then calls answer (at most
// once: a panic answers with an error): it runs the request again (again:
// without the client's commands, which were applied the first time)
// whenever a watched folder has news for the device, and answers with
// the first non-empty result. It returns once the wait is set up; each
// new round starts on a goroutine of its own, so the stack stays flat
// however many rounds an hour brings.
func (hs *hangingSync) wait(ctx context.Context, req *Request, w push.Wait, sess backend.Session, watched []watchedFolder, again *wbxml.Element, deadline time.Time, answer func(Response, error)) {
	defer hs.m.s.recoverAnswer(req, answer)
	left := time.Until(deadline)
	if left <= 0 {
		answer(Response{}, nil)
		return
	}
	cw := &changeWait{s: hs.m.s, eng: hs.m.eng, req: req, sess: sess, watched: watched, hb: left,
		afterFunc: hs.afterFunc, waiting: hs.waiting}
	cw.run(ctx, w, func(res waitResult, err error) {
		defer hs.m.s.recoverAnswer(req, answer)
		if err != nil {
			answer(Response{}, err)
			return
		}
		switch res.reason {
		case 0, push.Wake:
		case push.DeviceChanged:
			answer(Response{}, hs.m.s.admit(ctx, req))
			return
		default:
			// Superseded or shutting down: nothing to report.
			answer(Response{}, nil)
			return
		}
		if res.reason == 0 && !res.done() {
			answer(Response{}, nil) // the heartbeat ended
			return
		}
		resp, err := hs.m.sync(ctx, req, again)
		if err != nil || !emptySync(resp) || res.reason == push.Wake {
			answer(resp, err)
			return
		}
		go hs.wait(ctx, req, w, sess, watched, again, deadline, answer)
	})
}

// requested returns the wait a Sync request asks for (0 for none), or
// the Status 14 answer (with the nearest Limit: minutes for Wait, seconds
// for HeartbeatInterval) when it is outside the configured bounds. Both
// at once, and the protocol's own ranges, are left to mailSync.sync.
func (hs *hangingSync) requested(body *wbxml.Element) (time.Duration, *Response) {
	if body == nil {
		return 0, nil
	}
	_, hasWait := intText(body, wbxml.AirSyncWait)
	_, hasHB := intText(body, wbxml.AirSyncHeartbeatInterval)
	if hasWait && hasHB {
		return 0, nil // Status 4 from mailSync.sync
	}
	if n, ok := intText(body, wbxml.AirSyncHeartbeatInterval); ok {
		d := time.Duration(n) * time.Second
		switch {
		case d < hs.min:
			r := syncTop(mailsync.StatusInvalidWait, int((hs.min+time.Second-1)/time.Second))
			return 0, &r
		case d > hs.max:
			r := syncTop(mailsync.StatusInvalidWait, int(hs.max/time.Second))
			return 0, &r
		}
		return d, nil
	}
	if n, ok := intText(body, wbxml.AirSyncWait); ok {
		d := time.Duration(n) * time.Minute
		switch {
		case d < hs.min:
			r := syncTop(mailsync.StatusInvalidWait, min(int((hs.min+time.Minute-1)/time.Minute), maxWaitMinutes))
			return 0, &r
		case d > hs.max:
			r := syncTop(mailsync.StatusInvalidWait, max(int(hs.max/time.Minute), minWaitMinutes))
			return 0, &r
		}
		return d, nil
	}
	return 0, nil
}

// cachedRequest reads the device's cached Sync request; nil when there is
// none.
func (hs *hangingSync) cachedRequest(ctx context.Context, req *Request) (*wbxml.Element, error) {
	raw, err := hs.m.s.cfg.Devices.GetCachedRequest(ctx, req.User, req.DeviceID, devices.RequestSync)
	if errors.Is(err, devices.ErrNotFound) || len(raw) == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	doc, err := wbxml.Parse(bytes.NewReader(raw), wbxml.Limits{})
	if err != nil {
		return nil, nil
	}
	return doc, nil
}

// watched lists the folders of the cached request's collections that the
// device's hierarchy knows.
func (hs *hangingSync) watched(ctx context.Context, req *Request, cache *wbxml.Element) ([]watchedFolder, error) {
	h, err := hierarchy.Load(ctx, hs.m.s.cfg.Devices, req.User, req.DeviceID)
	if errors.Is(err, devices.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []watchedFolder
	for _, id := range cachedOrder(cache) {
		if f, ok := h.Folder(id); ok && !f.NoSelect {
			out = append(out, watchedFolder{sid: id, folder: f.ID})
		}
	}
	return out, nil
}

// emptySync reports whether a Sync answer is the empty "nothing to
// report" one (MS-ASCMD 2.2.2.20).
func emptySync(r Response) bool { return r.Element == nil && r.Body == nil }

// withoutCommands returns a copy of a Sync request without the
// collections' Commands; nil stays nil.
func withoutCommands(body *wbxml.Element) *wbxml.Element {
	if body == nil {
		return nil
	}
	return syncCopy(body, nil, []wbxml.Tag{wbxml.AirSyncCommands})
}
