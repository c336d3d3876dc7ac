package push

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/easgate/easgate/backend"
)

// Defaults of Hub.
const (
	DefaultPollInterval = 30 * time.Second
	DefaultLinger       = 10 * time.Second
	DefaultMinBackoff   = time.Second
	DefaultMaxBackoff   = time.Minute
)

// Opener opens a mail session for the watcher of a user, with the
// credentials of a request that waits (backend.Store.Open).
type Opener func(ctx context.Context) (backend.Session, error)

// Hub runs one watcher per user, shared by all of that user's waiting
// requests (every device's Ping and hanging Sync): IMAP IDLE on the Inbox
// (backend.Watcher) and a poll of the watched folders' change marks
// (UIDNEXT, MESSAGES, HIGHESTMODSEQ; one LIST-STATUS) every PollInterval,
// on the IDLE connection, which pauses for it. A user's watcher starts
// with the first Watch and stops Linger after the last Subscription
// closed, so a user holds at most one IDLE connection plus the pool's
// connections however many devices wait (and, on servers with
// CONDSTORE, the user's requests borrow the IDLE connection before they
// open pooled ones: backend/imapstore).
//
// The watcher also says when the list of folders changed (a folder was
// created, deleted or renamed), for Ping's Status 7.
//
// The watcher only says that a folder may have changed; each waiter
// decides with its own device's sync state whether that is news to it
// (a device's own flag change moves the folder's marks but is not news
// to that device).
//
// Set the fields before the first Watch; the zero value uses the
// defaults. A Hub is safe for concurrent use.
type Hub struct {
	// PollInterval is how often the watched folders' marks are read;
	// DefaultPollInterval when zero.
	PollInterval time.Duration
	// Linger keeps a watcher nobody waits on for this long, so that a
	// phone's next Ping, sent right after the last answer, finds it
	// running; DefaultLinger when zero, negative for none.
	Linger time.Duration
	// MinBackoff and MaxBackoff bound the wait before IDLE is tried
	// again after its connection failed (doubling from MinBackoff);
	// defaults DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives watcher failures; nil means slog.Default().
	Logger *slog.Logger
	// Ticker replaces time.NewTicker for the poll (tests).
	Ticker func(d time.Duration) (<-chan time.Time, func())

	mu     sync.Mutex
	users  map[string]*userWatch
	closed bool
	wg     sync.WaitGroup
}

// ErrHubClosed is returned by Watch after Close.
var ErrHubClosed = errors.New("push: watcher hub closed")

// Watch subscribes to changes of folders (of user's mailbox), starting
// the user's watcher if none runs. open is how the watcher logs in if it
// must (the latest caller's wins, so a changed password heals). Watch
// returns once the watcher has marks of every one of the folders (it
// polls for those it has none of), so any change after Watch returns is
// reported on the Subscription: a caller checks its own state after
// Watch, then waits on Changed. The caller must Close the Subscription.
func (h *Hub) Watch(ctx context.Context, user string, open Opener, folders []backend.FolderID) (*Subscription, error) {
	sub := &Subscription{c: make(chan struct{}, 1)}
	for _, f := range folders {
		if !slices.Contains(sub.folders, f) {
			sub.folders = append(sub.folders, f)
		}
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrHubClosed
	}
	if h.users == nil {
		h.users = make(map[string]*userWatch)
	}
	w := h.users[user]
	if w == nil {
		w = h.newUserWatch(user)
		h.users[user] = w
	}
	if w.linger != nil {
		w.linger.Stop()
		w.linger = nil
	}
	w.open = open
	w.subs[sub] = true
	sub.w = w
	h.mu.Unlock()

	// The watcher reads the marks now if it lacks some; the new
	// subscriber is left out of what that poll finds (it is about to
	// check everything itself).
	req := pollRequest{sub: sub, done: make(chan error, 1)}
	select {
	case w.polls <- req:
	case <-w.ctx.Done():
		sub.Close()
		return nil, ErrHubClosed
	case <-ctx.Done():
		sub.Close()
		return nil, ctx.Err()
	}
	select {
	case err := <-req.done:
		if err != nil {
			sub.Close()
			return nil, err
		}
	case <-ctx.Done():
		sub.Close()
		return nil, ctx.Err()
	}
	return sub, nil
}

// Watchers returns how many users have a watcher running.
func (h *Hub) Watchers() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.users)
}

// Close stops every watcher and waits for them; Watch fails afterwards.
func (h *Hub) Close() {
	h.mu.Lock()
	h.closed = true
	for user, w := range h.users {
		w.stop()
		delete(h.users, user)
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// Subscription is one waiting request's interest in some folders.
type Subscription struct {
	w       *userWatch
	folders []backend.FolderID // fixed at Watch; a handful, so a slice (thousands of subscriptions wait at once)

	mu       sync.Mutex
	pending  []backend.FolderID
	hier     bool // the folder list changed since the last Take
	c        chan struct{}
	onChange func()
	closed   bool
}

// Changed receives a value when some of the folders may have changed
// since the last Take.
func (s *Subscription) Changed() <-chan struct{} { return s.c }

// OnChange sets f to be called whenever Changed would receive, for a
// waiter without a goroutine of its own; nil removes it. f runs on the
// watcher's goroutine: it must not block.
func (s *Subscription) OnChange(f func()) {
	s.mu.Lock()
	s.onChange = f
	s.mu.Unlock()
}

// signal wakes the subscriber. s.mu is held.
func (s *Subscription) signal() {
	select {
	case s.c <- struct{}{}:
	default:
	}
	if s.onChange != nil {
		s.onChange()
	}
}

// Take returns the folders that may have changed since the last Take,
// and whether the list of folders changed (one was created, deleted or
// renamed: the device may need a FolderSync), and forgets them.
func (s *Subscription) Take() (folders []backend.FolderID, hierarchy bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	folders, s.pending = s.pending, nil
	hierarchy, s.hier = s.hier, false
	return folders, hierarchy
}

// notifyHierarchy records that the list of folders changed.
func (s *Subscription) notifyHierarchy() {
	s.mu.Lock()
	s.hier = true
	s.signal()
	s.mu.Unlock()
}

// notify records that f may have changed, if the subscription watches it.
func (s *Subscription) notify(f backend.FolderID) {
	if !slices.Contains(s.folders, f) {
		return
	}
	s.mu.Lock()
	if !slices.Contains(s.pending, f) {
		s.pending = append(s.pending, f)
	}
	s.signal()
	s.mu.Unlock()
}

// Close ends the subscription; the user's watcher stops when it was the
// last one (after Linger). Calling it again does nothing.
func (s *Subscription) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.mu.Unlock()
	s.w.unsubscribe(s)
}

// pollRequest asks a watcher to read the marks now, for a new
// subscriber.
type pollRequest struct {
	sub  *Subscription
	done chan error
}

// marks are a folder's change marks as STATUS reports them.
type marks struct {
	uidValidity   uint32
	uidNext       backend.UID
	messages      uint32
	highestModSeq uint64
}

// userWatch is one user's watcher: a goroutine (run) owning a mail
// session and, while the Inbox is watched, an IDLE on it.
type userWatch struct {
	h      *Hub
	user   string
	ctx    context.Context // ends when the watcher stops
	cancel context.CancelFunc
	polls  chan pollRequest
	moved  chan struct{} // IDLE reported a change

	// Guarded by h.mu.
	open   Opener
	subs   map[*Subscription]bool
	linger *time.Timer
}

func (h *Hub) newUserWatch(user string) *userWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &userWatch{h: h, user: user, ctx: ctx, cancel: cancel, polls: make(chan pollRequest),
		moved: make(chan struct{}, 1),
		subs:  make(map[*Subscription]bool)}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		w.run(ctx)
	}()
	return w
}

// stop ends the watcher's goroutine. h.mu is held.
func (w *userWatch) stop() {
	if w.linger != nil {
		w.linger.Stop()
		w.linger = nil
	}
	w.cancel()
}

// unsubscribe removes sub; the last one out schedules the watcher's end.
func (w *userWatch) unsubscribe(sub *Subscription) {
	h := w.h
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(w.subs, sub)
	if len(w.subs) > 0 || h.users[w.user] != w {
		return
	}
	linger := h.Linger
	if linger == 0 {
		linger = DefaultLinger
	}
	if linger < 0 {
		delete(h.users, w.user)
		w.stop()
		return
	}
	if w.linger == nil {
		w.linger = time.AfterFunc(linger, func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			if len(w.subs) == 0 && h.users[w.user] == w {
				delete(h.users, w.user)
				w.stop()
			}
		})
	}
}

// watched returns the union of the subscribers' folders and the
// subscribers.
func (w *userWatch) watched() (map[backend.FolderID]bool, []*Subscription, Opener) {
	w.h.mu.Lock()
	defer w.h.mu.Unlock()
	fs := make(map[backend.FolderID]bool)
	subs := make([]*Subscription, 0, len(w.subs))
	for s := range w.subs {
		subs = append(subs, s)
		for _, f := range s.folders {
			fs[f] = true
		}
	}
	return fs, subs, w.open
}

// watchState is what the watcher's goroutine owns.
type watchState struct {
	sess    backend.Session
	base    map[backend.FolderID]marks // marks at the last poll, watched folders only
	inbox   backend.FolderID           // "" until known
	folders uint64                     // fingerprint of the folder list at the last poll; 0 before

	watch    backend.Watch      // the running IDLE; nil when none
	starting context.CancelFunc // a Watch being set up; nil when none
	started  chan startResult   // its outcome
	backoff  time.Duration
	retry    *time.Timer // pending IDLE restart
}

// baselined reports whether every folder of sub has marks from a poll.
func (st *watchState) baselined(sub *Subscription) bool {
	for _, f := range sub.folders {
		if _, ok := st.base[f]; !ok {
			return false
		}
	}
	return true
}

// startResult is the outcome of setting up IDLE.
type startResult struct {
	watch backend.Watch
	err   error
}

// run is the watcher's goroutine: polls, IDLE events and new subscribers
// are handled one at a time.
func (w *userWatch) run(ctx context.Context) {
	h := w.h
	st := &watchState{base: make(map[backend.FolderID]marks)}
	defer func() {
		w.stopIdle(st)
		if st.retry != nil {
			st.retry.Stop()
		}
		if st.sess != nil {
			st.sess.Close()
		}
	}()
	interval := h.PollInterval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	newTicker := h.Ticker
	if newTicker == nil {
		newTicker = func(d time.Duration) (<-chan time.Time, func()) {
			t := time.NewTicker(d)
			return t.C, t.Stop
		}
	}
	ticks, stopTicks := newTicker(interval)
	defer stopTicks()
	logPoll := func(err error) {
		if err != nil && ctx.Err() == nil {
			h.logger().Warn("push: polling the folders failed", "user", w.user, "err", err)
		}
	}

	for {
		var idleDone <-chan struct{}
		if st.watch != nil {
			idleDone = st.watch.Done()
		}
		var retry <-chan time.Time
		if st.retry != nil {
			retry = st.retry.C
		}
		select {
		case <-ctx.Done():
			return
		case req := <-w.polls:
			// Answer every subscriber that asked meanwhile with one
			// poll.
			reqs := []pollRequest{req}
			for more := true; more; {
				select {
				case r := <-w.polls:
					reqs = append(reqs, r)
				default:
					more = false
				}
			}
			// A poll is needed only for a baseline: changes to folders
			// that have one are found against it (or by IDLE), and the
			// subscriber sees older ones itself.
			var err error
			if slices.ContainsFunc(reqs, func(r pollRequest) bool { return !st.baselined(r.sub) }) {
				except := make(map[*Subscription]bool, len(reqs))
				for _, r := range reqs {
					except[r.sub] = true
				}
				err = w.poll(ctx, st, except)
			}
			for _, r := range reqs {
				r.done <- err
			}
		case <-ticks:
			logPoll(w.poll(ctx, st, nil))
		case res := <-st.started:
			st.starting, st.started = nil, nil
			if res.err != nil {
				w.idleFailed(ctx, st, res.err)
				continue
			}
			st.watch = res.watch
			st.backoff = 0
			// Whatever happened while IDLE was not waiting.
			logPoll(w.poll(ctx, st, nil))
		case <-w.moved:
			_, subs, _ := w.watched()
			for _, s := range subs {
				s.notify(st.inbox)
			}
		case <-idleDone:
			err := st.watch.Err()
			st.watch = nil
			w.idleFailed(ctx, st, err)
		case <-retry:
			st.retry = nil
			logPoll(w.poll(ctx, st, nil))
		}
	}
}

// idleFailed schedules the next attempt at IDLE, after a backoff.
func (w *userWatch) idleFailed(ctx context.Context, st *watchState, err error) {
	if ctx.Err() != nil {
		return
	}
	h := w.h
	st.backoff = nextBackoff(st.backoff, h.MinBackoff, h.MaxBackoff)
	h.logger().Warn("push: IMAP IDLE ended; polling until it is back",
		"user", w.user, "err", err, "retry_in", st.backoff)
	if errors.Is(err, backend.ErrFolderNotFound) || errors.Is(err, backend.ErrUIDValidityChanged) {
		// The Inbox is not what it was: learn it anew.
		delete(st.base, st.inbox)
		st.inbox = ""
	}
	st.retry = time.NewTimer(st.backoff)
}

// poll reads the marks of the watched folders (on the IDLE connection
// when IDLE runs, else on the session's pooled connections) and tells the
// subscribers (other than except) of each folder whose marks moved or
// that is gone. A folder newly watched only gets its baseline. The Inbox
// is compared too, although IDLE reports its changes at once: a change
// IDLE missed (its connection was re-established, or the server did not
// say) is then late by one poll interval, not lost; the cost is a second,
// fruitless check by the waiters after an Inbox change. It starts IDLE when the Inbox is watched and IDLE neither runs nor waits
// for its retry.
func (w *userWatch) poll(ctx context.Context, st *watchState, except map[*Subscription]bool) error {
	union, subs, open := w.watched()
	var fs []backend.Folder
	var err error
	if st.watch != nil {
		fs, err = st.watch.Folders(ctx)
		// On failure (the watch ended, and its Done follows; or the
		// server refused the LIST) the session answers this time.
	}
	if st.watch == nil || err != nil {
		if st.sess == nil {
			if open == nil {
				return fmt.Errorf("push: no way to open the mailbox of %s", w.user)
			}
			sess, err := open(ctx)
			if err != nil {
				return err
			}
			st.sess = sess
		}
		fs, err = st.sess.Folders(ctx)
		if err != nil {
			// Start afresh next time: the session may be the trouble
			// (a password changed since).
			st.sess.Close()
			st.sess = nil
			return err
		}
	}
	now := make(map[backend.FolderID]marks, len(fs))
	for _, f := range fs {
		now[f.ID] = marks{f.UIDValidity, f.UIDNext, f.Messages, f.HighestModSeq}
		if f.Role == backend.RoleInbox && st.inbox == "" {
			st.inbox = f.ID
		}
	}
	fp := fingerprint(fs)
	hierarchy := st.folders != 0 && fp != st.folders
	st.folders = fp
	var moved []backend.FolderID
	for f := range union {
		m, ok := now[f]
		b, had := st.base[f]
		switch {
		case !ok:
			moved = append(moved, f)
			delete(st.base, f)
		case !had:
			st.base[f] = m
		case m != b:
			st.base[f] = m
			moved = append(moved, f)
		}
	}
	for f := range st.base {
		if !union[f] {
			delete(st.base, f)
		}
	}
	for _, s := range subs {
		if except[s] {
			continue
		}
		for _, f := range moved {
			s.notify(f)
		}
		if hierarchy {
			s.notifyHierarchy()
		}
	}
	if st.inbox != "" && union[st.inbox] && st.watch == nil && st.starting == nil && st.retry == nil {
		w.startIdle(st)
	}
	return nil
}

// fingerprint sums up a folder list (IDs name the folder and its
// UIDVALIDITY; parents and roles complete the picture), never 0.
func fingerprint(fs []backend.Folder) uint64 {
	keys := make([]string, len(fs))
	for i, f := range fs {
		keys[i] = string(f.ID) + "\x00" + string(f.Parent) + "\x00" + strconv.Itoa(int(f.Role))
	}
	slices.Sort(keys)
	h := fnv.New64a()
	for _, k := range keys {
		h.Write([]byte(k))
		h.Write([]byte{0xff})
	}
	return h.Sum64() | 1
}

// startIdle sets up IDLE on the Inbox in a goroutine of its own, when the
// session can; the outcome arrives on st.started.
func (w *userWatch) startIdle(st *watchState) {
	watcher, ok := st.sess.(backend.Watcher)
	if !ok {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan startResult, 1)
	st.starting, st.started = cancel, started
	inbox := st.inbox
	go func() {
		wt, err := watcher.Watch(ctx, inbox, func() {
			select {
			case w.moved <- struct{}{}:
			default:
			}
		})
		started <- startResult{wt, err}
	}()
}

// stopIdle ends IDLE, or its set-up, and closes its connection.
func (w *userWatch) stopIdle(st *watchState) {
	if st.starting != nil {
		st.starting()
		if res := <-st.started; res.watch != nil {
			res.watch.Close()
		}
		st.starting, st.started = nil, nil
	}
	if st.watch != nil {
		st.watch.Close()
		st.watch = nil
	}
}

// nextBackoff doubles d within [lo, hi].
func nextBackoff(d, lo, hi time.Duration) time.Duration {
	if lo <= 0 {
		lo = DefaultMinBackoff
	}
	if hi <= 0 {
		hi = DefaultMaxBackoff
	}
	d *= 2
	return min(max(d, lo), hi)
}

func (h *Hub) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}
