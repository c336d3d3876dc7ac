package eas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/eas/mailitem"
	"github.com/easgate/easgate/eas/mailsync"
	"github.com/easgate/easgate/eas/push"
	"github.com/easgate/easgate/wbxml"
)

// mailSync runs Sync, GetItemEstimate and MoveItems with the mail sync
// engine (eas/mailsync).
type mailSync struct {
	s       *Server
	eng     *mailsync.Engine
	budgets mailsync.Budgets
}

// registerMailSync registers Sync, GetItemEstimate and MoveItems when the
// server has a device store and a mail store (Config.Devices, Config.Mail).
func (s *Server) registerMailSync() {
	if s.cfg.Devices == nil || s.cfg.Mail == nil {
		return
	}
	m := &mailSync{s: s, eng: &mailsync.Engine{Store: s.cfg.Devices, Logger: s.log, Now: s.cfg.Now}}
	// Items that could not be converted are logged by the engine, listed
	// by the admin API's sync report, and counted here.
	failed := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "easgate_sync_items_failed_total",
		Help: "Messages that could not be converted into an EAS item (Sync Add or Fetch); each is retried on later Syncs.",
	}, func() float64 { return float64(m.eng.BuildFailures()) })
	aheadUsed := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "easgate_sync_read_ahead_messages_total",
		Help: "Messages a Sync round took from the read ahead of its window rather than from IMAP.",
	}, func() float64 { return float64(m.eng.ReadAheadUsed()) })
	aheadHeld := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "easgate_sync_read_ahead_bytes",
		Help: "Bytes of messages read ahead for the next round of paged Syncs and not yet taken.",
	}, func() float64 { return float64(m.eng.ReadAheadHeld()) })
	for _, c := range []prometheus.Collector{failed, aheadUsed, aheadHeld} {
		if err := s.reg.Register(c); err != nil {
			s.log.Error("registering the Sync metrics", "err", err)
		}
	}
	s.mustHandle("Sync", s.hangingSyncHandler(m)) // m.sync, held while it waits: syncwait.go
	s.mustHandle("GetItemEstimate", m.getItemEstimate)
	s.mustHandle("MoveItems", m.moveItems)
}

// Limits of a Sync request (MS-ASCMD 2.2.3.198, 2.2.3.88.2, 2.2.3.94).
const (
	minWaitMinutes = 1
	maxWaitMinutes = 59
	minHeartbeat   = 60
	maxHeartbeat   = 3540
	maxSyncFolders = 100
)

// maxMailFilter is the largest FilterType taken for mail: 7 (six months).
// MS-ASCMD 2.2.3.68.2 lists 6 and 7 for calendars only, but mail clients
// that send them mean them (mailsync.FilterSince); read as 0 they would
// download the whole folder the user chose to limit.
const maxMailFilter = 7

// syncCollection is one parsed Collection of a Sync request.
type syncCollection struct {
	key, id    string
	getChanges *bool
	window     int
	dam        *bool
	options    *wbxml.Element // the Email Options block, nil when absent
	commands   []mailsync.Command
}

func intText(e *wbxml.Element, tag wbxml.Tag) (int, bool) {
	c := e.Child(tag)
	if c == nil {
		return 0, false
	}
	n, err := strconv.Atoi(c.Value())
	if err != nil {
		return 0, false
	}
	return n, true
}

// boolText reads an element that is "1"/"0" or, empty, true.
func boolChild(e *wbxml.Element, tag wbxml.Tag) *bool {
	c := e.Child(tag)
	if c == nil {
		return nil
	}
	v := c.Value() != "0"
	return &v
}

// emailOptions returns the Options block for mail: the one without Class
// or with Class Email (14.0+ may add one for SMS).
func emailOptions(coll *wbxml.Element) *wbxml.Element {
	for _, o := range coll.ChildrenOf(wbxml.AirSyncOptions) {
		if c := o.ChildText(wbxml.AirSyncClass); c == "" || c == "Email" {
			return o
		}
	}
	return nil
}

func parseCollection(c *wbxml.Element) (*syncCollection, error) {
	sc := &syncCollection{
		key:        c.ChildText(wbxml.AirSyncSyncKey),
		id:         c.ChildText(wbxml.AirSyncCollectionId),
		getChanges: boolChild(c, wbxml.AirSyncGetChanges),
		dam:        boolChild(c, wbxml.AirSyncDeletesAsMoves),
		options:    emailOptions(c),
	}
	if sc.id == "" {
		return nil, errors.New("Collection without CollectionId")
	}
	if n, ok := intText(c, wbxml.AirSyncWindowSize); ok {
		sc.window = n
		if n == 0 {
			// MS-ASCMD 2.2.3.199: 0 means 512, not the default of
			// an absent WindowSize (100).
			sc.window = mailsync.MaxWindowSize
		}
	}
	if cmds := c.Child(wbxml.AirSyncCommands); cmds != nil {
		for _, cmd := range cmds.Children {
			mc := mailsync.Command{ServerID: cmd.ChildText(wbxml.AirSyncServerId), ClientID: cmd.ChildText(wbxml.AirSyncClientId)}
			switch cmd.Tag {
			case wbxml.AirSyncChange:
				mc.Kind = mailsync.CmdChange
				if ad := cmd.Child(wbxml.AirSyncApplicationData); ad != nil {
					if r := ad.Child(wbxml.EmailRead); r != nil {
						v := r.Value() == "1"
						mc.Read = &v
					}
					if f := ad.Child(wbxml.EmailFlag); f != nil {
						st := f.ChildText(wbxml.EmailStatus)
						mc.Flag = &st
					}
					// Content of a 16.x draft (digest §4.3): editing it
					// is not supported, and must not look done.
					for _, tag := range []wbxml.Tag{wbxml.EmailTo, wbxml.EmailCc, wbxml.Email2Bcc, wbxml.EmailSubject,
						wbxml.EmailImportance, wbxml.AirSyncBaseBody, wbxml.AirSyncBaseAttachments, wbxml.Email2Send} {
						mc.EditsContent = mc.EditsContent || ad.Has(tag)
					}
					if cats := ad.Child(wbxml.EmailCategories); cats != nil {
						mc.Categories = []string{}
						for _, cat := range cats.ChildrenOf(wbxml.EmailCategory) {
							mc.Categories = append(mc.Categories, cat.Value())
						}
					}
				}
			case wbxml.AirSyncDelete:
				mc.Kind = mailsync.CmdDelete
			case wbxml.AirSyncFetch:
				mc.Kind = mailsync.CmdFetch
			case wbxml.AirSyncAdd:
				mc.Kind = mailsync.CmdAdd
				if ad := cmd.Child(wbxml.AirSyncApplicationData); ad != nil {
					// A draft that does not convert gets Status 6;
					// the engine logs why.
					mc.Draft, mc.DraftErr = mailitem.ParseDraft(ad)
				}
			default:
				return nil, fmt.Errorf("unknown Sync command %v", cmd.Tag)
			}
			sc.commands = append(sc.commands, mc)
		}
	}
	return sc, nil
}

// itemOptions reads BodyPreference, MIMESupport and MIMETruncation
// (MS-ASAIRS 2.2.2.7, MS-ASCMD 2.2.3.110, 2.2.3.111).
func itemOptions(o *wbxml.Element, version string) mailitem.Options {
	opts := mailitem.Options{Version: version}
	if o == nil {
		return opts
	}
	for _, bp := range o.ChildrenOf(wbxml.AirSyncBaseBodyPreference) {
		p := mailitem.BodyPreference{}
		if n, ok := intText(bp, wbxml.AirSyncBaseType); ok {
			p.Type = mailitem.BodyType(n)
		}
		if n, ok := intText(bp, wbxml.AirSyncBaseTruncationSize); ok && n > 0 {
			p.TruncationSize = int64(n)
		}
		if v := boolChild(bp, wbxml.AirSyncBaseAllOrNone); v != nil {
			p.AllOrNone = *v
		}
		if n, ok := intText(bp, wbxml.AirSyncBasePreview); ok {
			p.Preview = min(max(n, 0), 255)
		}
		opts.BodyPreferences = append(opts.BodyPreferences, p)
	}
	if n, ok := intText(o, wbxml.AirSyncMIMESupport); ok && n >= 0 && n <= 2 {
		opts.MIMESupport = mailitem.MIMESupport(n)
	}
	if n, ok := intText(o, wbxml.AirSyncMIMETruncation); ok && n >= 0 && n < len(mimeTruncation) {
		opts.MIMETruncation = mimeTruncation[n]
	}
	return opts
}

// mimeTruncation are the cuts of airsync:MIMETruncation (MS-ASCMD
// 2.2.3.111) for a MIME body no BodyPreference of Type 4 sizes: 0 sends
// no body data at all (all or none of one byte: the body is marked
// truncated, with its size), 1–7 cut it at 4,096 to 102,400 characters,
// 8 sends it whole.
var mimeTruncation = [...]mailitem.BodyPreference{
	0: {Type: mailitem.BodyMIME, TruncationSize: 1, AllOrNone: true},
	1: {Type: mailitem.BodyMIME, TruncationSize: 4096},
	2: {Type: mailitem.BodyMIME, TruncationSize: 5120},
	3: {Type: mailitem.BodyMIME, TruncationSize: 7168},
	4: {Type: mailitem.BodyMIME, TruncationSize: 10240},
	5: {Type: mailitem.BodyMIME, TruncationSize: 20480},
	6: {Type: mailitem.BodyMIME, TruncationSize: 51200},
	7: {Type: mailitem.BodyMIME, TruncationSize: 102400},
	8: {Type: mailitem.BodyMIME},
}

// syncTop answers a Sync with only a top-level Status (and Limit).
func syncTop(status int, limit int) Response {
	e := wbxml.E(wbxml.AirSyncSync, wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(status)))
	if limit > 0 {
		e.Add(wbxml.T(wbxml.AirSyncLimit, strconv.Itoa(limit)))
	}
	return Response{Element: e}
}

// stripCommands returns a copy of a Sync request without Commands and
// SyncKeys, the form cached for empty and Partial requests.
func stripCommands(body *wbxml.Element) *wbxml.Element {
	return syncCopy(body, []wbxml.Tag{wbxml.AirSyncPartial}, []wbxml.Tag{wbxml.AirSyncCommands, wbxml.AirSyncSyncKey})
}

// syncCopy returns a copy of a Sync request without the top-level
// elements named in dropTop and without the elements named in dropColl
// in each Collection. The elements kept are shared, not copied.
func syncCopy(body *wbxml.Element, dropTop, dropColl []wbxml.Tag) *wbxml.Element {
	out := &wbxml.Element{Tag: body.Tag}
	for _, c := range body.Children {
		if c.Tag != wbxml.AirSyncCollections {
			if !slices.Contains(dropTop, c.Tag) {
				out.Children = append(out.Children, c)
			}
			continue
		}
		colls := &wbxml.Element{Tag: c.Tag}
		for _, coll := range c.Children {
			cc := &wbxml.Element{Tag: coll.Tag}
			for _, x := range coll.Children {
				if !slices.Contains(dropColl, x.Tag) {
					cc.Children = append(cc.Children, x)
				}
			}
			colls.Children = append(colls.Children, cc)
		}
		out.Children = append(out.Children, colls)
	}
	return out
}

// sync is the Sync command (MS-ASCMD 2.2.1.21, the digest §3.4).
//
// An empty body or Partial (12.1+) takes the collections of the cached
// last full request (Status 13 when there is none), with the keys the
// phone holds. Wait and HeartbeatInterval are checked (Status 14 with
// Limit, both at once Status 4); the wait itself is hangingSync's
// (syncwait.go), around this.
// When no collection has anything to report the response is empty
// (MS-ASCMD 2.2.2.20); from 14.0 collections with nothing to report are
// left out.
func (m *mailSync) sync(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
	defer m.s.busy.begin(push.Key{User: req.User, Device: req.DeviceID})()
	store := m.s.cfg.Devices
	cached, err := store.GetCachedRequest(ctx, req.User, req.DeviceID, devices.RequestSync)
	if err != nil && !errors.Is(err, devices.ErrNotFound) {
		return Response{}, err
	}
	var cache *wbxml.Element
	if len(cached) > 0 {
		if cache, err = wbxml.Parse(bytes.NewReader(cached), wbxml.Limits{}); err != nil {
			cache = nil
		}
	}
	partial := body != nil && body.Has(wbxml.AirSyncPartial)
	if body == nil || partial {
		if cache == nil {
			return syncTop(mailsync.StatusIncomplete, 0), nil
		}
	}
	if body == nil {
		body = cache
	}
	_, hasWait := intText(body, wbxml.AirSyncWait)
	_, hasHB := intText(body, wbxml.AirSyncHeartbeatInterval)
	if hasWait && hasHB {
		return syncTop(mailsync.StatusProtocolError, 0), nil
	}
	if n, ok := intText(body, wbxml.AirSyncWait); ok && (n < minWaitMinutes || n > maxWaitMinutes) {
		return syncTop(mailsync.StatusInvalidWait, min(max(n, minWaitMinutes), maxWaitMinutes)), nil
	}
	if n, ok := intText(body, wbxml.AirSyncHeartbeatInterval); ok && (n < minHeartbeat || n > maxHeartbeat) {
		return syncTop(mailsync.StatusInvalidWait, min(max(n, minHeartbeat), maxHeartbeat)), nil
	}

	var colls []*syncCollection
	if cs := body.Child(wbxml.AirSyncCollections); cs != nil {
		for _, c := range cs.ChildrenOf(wbxml.AirSyncCollection) {
			sc, err := parseCollection(c)
			if err != nil {
				return syncTop(mailsync.StatusProtocolError, 0), nil
			}
			colls = append(colls, sc)
		}
	}
	cachedColls := map[string]*syncCollection{}
	if cache != nil {
		if cs := cache.Child(wbxml.AirSyncCollections); cs != nil {
			for _, c := range cs.ChildrenOf(wbxml.AirSyncCollection) {
				if sc, err := parseCollection(c); err == nil {
					cachedColls[sc.id] = sc
				}
			}
		}
	}
	if partial || body == cache {
		// Collections the request does not list come from the cache,
		// with the keys the phone holds.
		for _, id := range cachedOrder(cache) {
			if slices.ContainsFunc(colls, func(c *syncCollection) bool { return c.id == id }) {
				continue
			}
			colls = append(colls, cachedColls[id])
		}
		for _, c := range colls {
			if c.key != "" {
				continue
			}
			k, err := m.eng.CurrentKey(ctx, req.User, req.DeviceID, c.id)
			if err != nil && !errors.Is(err, mailsync.ErrInvalidKey) {
				return Response{}, err
			}
			c.key = k
			t := true
			c.getChanges = &t
		}
	}
	if len(colls) == 0 {
		return syncTop(mailsync.StatusProtocolError, 0), nil
	}
	if len(colls) > maxSyncFolders {
		return syncTop(mailsync.StatusTooMany, maxSyncFolders), nil
	}
	if body != cache {
		if err := m.stickyOptions(ctx, req, colls, cachedColls); err != nil {
			return Response{}, err
		}
		merged := stripCommands(body)
		keepOptions(merged, colls)
		if partial && cache != nil {
			merged = mergeCache(merged, cache)
		}
		data, err := wbxml.Marshal(merged)
		if err != nil {
			return Response{}, err
		}
		if err := store.PutCachedRequest(ctx, req.User, req.DeviceID, devices.RequestSync, data); err != nil {
			return Response{}, err
		}
	}

	sess, err := req.Mailbox(ctx)
	if err != nil {
		return Response{}, err
	}
	h, err := hierarchy.Load(ctx, store, req.User, req.DeviceID)
	if err != nil && !errors.Is(err, devices.ErrNotFound) {
		return Response{}, err
	}
	remaining := mailsync.MaxWindowSize
	if n, ok := intText(body, wbxml.AirSyncWindowSize); ok && n > 0 {
		remaining = min(n, mailsync.MaxWindowSize)
	}
	deadline := m.s.cfg.Now().Add(m.budgets.For(req.UserAgent, req.DeviceType))
	ver := req.VersionNumber()
	out := wbxml.E(wbxml.AirSyncCollections)
	reported := false
	for _, c := range colls {
		e, something, err := m.syncOne(ctx, req, sess, h, c, &remaining, deadline)
		if err != nil {
			return Response{}, err
		}
		if something {
			reported = true
		} else if ver >= 140 {
			continue
		}
		out.Add(e)
	}
	if !reported {
		return Response{}, nil // MS-ASCMD 2.2.2.20: nothing to report
	}
	return Response{Element: wbxml.E(wbxml.AirSyncSync, out)}, nil
}

// stickyOptionsKind is the kind of cached request (devices.Store
// PutCachedRequest) that keeps, per device, the last Options block each
// collection sent: a Sync document of Collection > CollectionId, Options.
const stickyOptionsKind = "sync-options"

// stickyOptions gives every collection without Options the last ones it
// sent, and remembers new ones. MS-ASCMD 2.2.3.125.6: the server keeps a
// collection's Options ("sticky options") until the client sends new
// ones, however many requests leave them out. The cached request (the
// last one) holds those of its collections, so the device's Options
// store is read only when a collection has Options neither in the
// request nor in the cached one (it came back after a request that did
// not list it, or never sent any), and written only when a collection's
// Options differ from the cached request's and the stored ones.
func (m *mailSync) stickyOptions(ctx context.Context, req *Request, colls []*syncCollection, cached map[string]*syncCollection) error {
	var missing, changed []*syncCollection
	for _, c := range colls {
		prev := cached[c.id]
		switch {
		case c.options == nil && prev != nil && prev.options != nil:
			c.options = prev.options
		case c.options == nil:
			missing = append(missing, c)
		case prev == nil || prev.options == nil || !sameElement(prev.options, c.options):
			changed = append(changed, c)
		}
	}
	if len(missing) == 0 && len(changed) == 0 {
		return nil
	}
	store := m.s.cfg.Devices
	kept := map[string]*wbxml.Element{}
	raw, err := store.GetCachedRequest(ctx, req.User, req.DeviceID, stickyOptionsKind)
	switch {
	case errors.Is(err, devices.ErrNotFound):
	case err != nil:
		return err
	default:
		doc, err := wbxml.Parse(bytes.NewReader(raw), wbxml.Limits{})
		if err != nil {
			// Written by this code, so not expected; the collections
			// fall back to the defaults and the document is replaced
			// with the next Options the phone sends.
			m.s.log.LogAttrs(ctx, slog.LevelWarn, "sync: stored Options unreadable",
				slog.String("user", req.User), slog.String("device", req.DeviceID), slog.String("err", err.Error()))
			break
		}
		if cs := doc.Child(wbxml.AirSyncCollections); cs != nil {
			for _, c := range cs.ChildrenOf(wbxml.AirSyncCollection) {
				kept[c.ChildText(wbxml.AirSyncCollectionId)] = c.Child(wbxml.AirSyncOptions)
			}
		}
	}
	for _, c := range missing {
		c.options = kept[c.id]
	}
	write := false
	for _, c := range changed {
		if k := kept[c.id]; k == nil || !sameElement(k, c.options) {
			kept[c.id], write = c.options, true
		}
	}
	if !write {
		return nil
	}
	out := wbxml.E(wbxml.AirSyncCollections)
	for _, id := range slices.Sorted(maps.Keys(kept)) {
		if kept[id] != nil {
			out.Add(wbxml.E(wbxml.AirSyncCollection, wbxml.T(wbxml.AirSyncCollectionId, id), kept[id]))
		}
	}
	data, err := wbxml.Marshal(wbxml.E(wbxml.AirSyncSync, out))
	if err != nil {
		return err
	}
	return store.PutCachedRequest(ctx, req.User, req.DeviceID, stickyOptionsKind, data)
}

// sameElement reports whether two elements encode the same.
func sameElement(a, b *wbxml.Element) bool {
	x, errA := wbxml.Marshal(a)
	y, errB := wbxml.Marshal(b)
	return errA == nil && errB == nil && bytes.Equal(x, y)
}

// keepOptions puts into the cached copy of a request the Options its
// collections were given by stickyOptions, so that the next request
// finds them in the cached one.
func keepOptions(merged *wbxml.Element, colls []*syncCollection) {
	cs := merged.Child(wbxml.AirSyncCollections)
	if cs == nil {
		return
	}
	for _, cc := range cs.ChildrenOf(wbxml.AirSyncCollection) {
		if emailOptions(cc) != nil {
			continue
		}
		id := cc.ChildText(wbxml.AirSyncCollectionId)
		for _, c := range colls {
			if c.id == id && c.options != nil {
				cc.Add(c.options)
				break
			}
		}
	}
}

// cachedOrder returns the CollectionIds of the cached request in order.
func cachedOrder(cache *wbxml.Element) []string {
	var ids []string
	if cache == nil {
		return nil
	}
	if cs := cache.Child(wbxml.AirSyncCollections); cs != nil {
		for _, c := range cs.ChildrenOf(wbxml.AirSyncCollection) {
			ids = append(ids, c.ChildText(wbxml.AirSyncCollectionId))
		}
	}
	return ids
}

// mergeCache adds the cached collections a Partial request left out.
func mergeCache(req, cache *wbxml.Element) *wbxml.Element {
	colls := req.Child(wbxml.AirSyncCollections)
	if colls == nil {
		colls = wbxml.E(wbxml.AirSyncCollections)
		req.Add(colls)
	}
	have := map[string]bool{}
	for _, c := range colls.Children {
		have[c.ChildText(wbxml.AirSyncCollectionId)] = true
	}
	if cs := cache.Child(wbxml.AirSyncCollections); cs != nil {
		for _, c := range cs.Children {
			if !have[c.ChildText(wbxml.AirSyncCollectionId)] {
				colls.Add(c)
			}
		}
	}
	return req
}

// syncOne runs one collection and returns its response element and
// whether it has anything to report.
func (m *mailSync) syncOne(ctx context.Context, req *Request, sess backend.Session, h *hierarchy.Hierarchy, c *syncCollection, remaining *int, deadline time.Time) (*wbxml.Element, bool, error) {
	status := func(key string, st int) *wbxml.Element {
		return wbxml.E(wbxml.AirSyncCollection,
			wbxml.T(wbxml.AirSyncSyncKey, key),
			wbxml.T(wbxml.AirSyncCollectionId, c.id),
			wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(st)))
	}
	var folder hierarchy.Folder
	ok := false
	if h != nil {
		folder, ok = h.Folder(c.id)
	}
	if !ok || folder.NoSelect {
		// Unknown collection: the phone's hierarchy is out of date.
		return status(c.key, mailsync.StatusHierarchyChanged), true, nil
	}
	opts := c.options // the sticky ones when the request has none (stickyOptions)
	io := itemOptions(opts, req.Version)
	io.Drafts = folder.Role == backend.RoleDrafts
	mo := mailsync.Options{Item: io, DeletesAsMoves: true, GetChanges: c.key != "0", From: m.s.address(req.User),
		FileRef: func(uid backend.UID, path []int) string { return fileReference(c.id, uid, path) }}
	if opts != nil {
		if n, ok := intText(opts, wbxml.AirSyncFilterType); ok && n >= 0 && n <= maxMailFilter {
			mo.FilterType = n
		}
		// Conflict (MS-ASCMD 2.2.3.34): 0 client wins, 1 (the default)
		// server wins.
		if n, ok := intText(opts, wbxml.AirSyncConflict); ok && n == 0 {
			mo.ClientWins = true
		}
	}
	if c.getChanges != nil {
		mo.GetChanges = *c.getChanges && c.key != "0"
	}
	if c.dam != nil {
		mo.DeletesAsMoves = *c.dam
	}
	win := c.window
	if win <= 0 {
		win = mailsync.DefaultWindowSize
	}
	mo.WindowSize = max(1, min(win, *remaining))
	unlock, err := m.s.colls.lock(ctx, collectionKey{req.User, req.DeviceID, c.id})
	if err != nil {
		return nil, false, err
	}
	r, err := m.eng.Sync(ctx, &mailsync.Request{
		User: req.User, Device: req.DeviceID, Collection: c.id, Folder: folder.ID, Session: sess,
		OpenSession: req.MailboxOpener(), SyncKey: c.key, Options: mo, Commands: c.commands, Deadline: deadline,
	})
	unlock()
	if err != nil {
		return nil, false, err
	}
	e := status(r.SyncKey, r.Status)
	if r.Status != mailsync.StatusSuccess {
		return e, true, nil
	}
	if r.MoreAvailable {
		e.Add(wbxml.E(wbxml.AirSyncMoreAvailable))
	}
	n := len(r.Adds) + len(r.Changes) + len(r.Deletes) + len(r.SoftDeletes)
	*remaining -= n
	if n > 0 {
		cmds := wbxml.E(wbxml.AirSyncCommands)
		for _, id := range r.Deletes {
			cmds.Add(wbxml.E(wbxml.AirSyncDelete, wbxml.T(wbxml.AirSyncServerId, id)))
		}
		for _, id := range r.SoftDeletes {
			cmds.Add(wbxml.E(wbxml.AirSyncSoftDelete, wbxml.T(wbxml.AirSyncServerId, id)))
		}
		for _, it := range r.Changes {
			cmds.Add(wbxml.E(wbxml.AirSyncChange, wbxml.T(wbxml.AirSyncServerId, it.ServerID), it.Data))
		}
		for _, it := range r.Adds {
			cmds.Add(wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncServerId, it.ServerID), it.Data))
		}
		e.Add(cmds)
	}
	if len(r.Responses) > 0 {
		rs := wbxml.E(wbxml.AirSyncResponses)
		for _, x := range r.Responses {
			switch x.Kind {
			case mailsync.CmdAdd:
				a := wbxml.E(wbxml.AirSyncAdd, wbxml.T(wbxml.AirSyncClientId, x.ClientID))
				if x.ServerID != "" {
					a.Add(wbxml.T(wbxml.AirSyncServerId, x.ServerID))
				}
				rs.Add(a.Add(wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(x.Status))))
			case mailsync.CmdFetch:
				f := wbxml.E(wbxml.AirSyncFetch, wbxml.T(wbxml.AirSyncServerId, x.ServerID), wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(x.Status)))
				if x.Data != nil {
					f.Add(x.Data)
				}
				rs.Add(f)
			default:
				tag := wbxml.AirSyncChange
				if x.Kind == mailsync.CmdDelete {
					tag = wbxml.AirSyncDelete
				}
				rs.Add(wbxml.E(tag, wbxml.T(wbxml.AirSyncServerId, x.ServerID), wbxml.T(wbxml.AirSyncStatus, strconv.Itoa(x.Status))))
			}
		}
		e.Add(rs)
	}
	return e, !r.Unchanged, nil
}
