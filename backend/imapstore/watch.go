package imapstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easgate/easgate/backend"
)

var _ backend.Watcher = (*session)(nil)

// Watch implements backend.Watcher with IMAP IDLE (RFC 2177) on a
// connection of its own, counted in PoolStats.Watching and closed by
// Store.Close. The client re-issues IDLE before the server's 30-minute
// limit by itself.
//
// When the server has CONDSTORE (RFC 7162), the user's operations borrow
// the watch's connection instead of opening their own (see lender in
// pool.go), so a user whose requests wait in Ping holds one connection
// even while mail arrives. The connection leaves IDLE while it is lent;
// when it comes back the watch reads the folder's marks again (UIDNEXT,
// MESSAGES, HIGHESTMODSEQ: STATUS, or EXAMINE if the borrower selected
// another folder) and reports a change if they moved, so nothing that
// happened meanwhile — by another client or by the borrower itself — goes
// unreported. Without CONDSTORE a flag change would not move the marks,
// so such a watch lends nothing.
//
// Changes between EXAMINE and IDLE are reported by the server when IDLE
// begins (untagged EXISTS, EXPUNGE, FETCH), so they reach changed too.
// The unilateral-data handlers only call changed: they run in the
// client's reader goroutine, where calling the client would deadlock
// (go-imap v2.0.0-beta.8). A borrower's own unilateral data reach changed
// too, held back until the borrower is done (see resume).
func (s *session) Watch(ctx context.Context, id backend.FolderID, changed func()) (backend.Watch, error) {
	if s.closed.Load() {
		return nil, backend.ErrClosed
	}
	w := &watch{pool: s.pool, id: id, changed: changed, done: make(chan struct{})}
	var armed atomic.Bool
	signal := func() {
		if armed.Load() {
			w.reported.Store(true)
			if w.borrowed.Load() {
				// Told to a borrower: resume reports it, once.
				w.missed.Store(true)
				return
			}
			changed()
		}
	}
	handler := &imapclient.UnilateralDataHandler{
		Expunge: func(uint32) { signal() },
		Mailbox: func(data *imapclient.UnilateralDataMailbox) {
			if data.NumMessages != nil {
				signal()
			}
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			// Runs in its own goroutine; the message must be consumed.
			msg.Collect()
			signal()
		},
	}
	c, err := s.pool.dial(ctx, s.key, s.password, handler)
	if err != nil {
		return nil, err
	}
	w.c, c.watch = c, w
	if !s.pool.watch(w) {
		c.close()
		return nil, fmt.Errorf("%w: store closed", backend.ErrUnavailable)
	}
	ok := false
	defer func() {
		if !ok {
			w.end(nil)
		}
	}()
	// Until IDLE runs, the caller's cancellation aborts by closing.
	stop := context.AfterFunc(ctx, func() { c.close() })
	_, data, err := openFolder(c, id, true)
	if err != nil {
		stop()
		if c.broken(err) {
			return nil, watchError(ctx, err)
		}
		return nil, err
	}
	if !c.has(imap.CapIdle) && !c.has(imap.CapIMAP4rev2) {
		stop()
		return nil, fmt.Errorf("%w: the IMAP server has no IDLE", backend.ErrUnavailable)
	}
	w.sel, w.marks = c.selected, selectMarks(data)
	// Armed before IDLE: what the server reports as IDLE begins happened
	// after EXAMINE, so it is news.
	armed.Store(true)
	idle, err := c.client.Idle()
	if !stop() || err != nil {
		return nil, watchError(ctx, err)
	}
	w.idle = idle
	w.stop = context.AfterFunc(ctx, func() { w.end(fmt.Errorf("watch ended: %w", ctx.Err())) })
	go func() {
		select {
		case <-c.client.Closed():
			w.end(fmt.Errorf("%w: connection closed while watching", backend.ErrUnavailable))
		case <-w.done:
		}
	}()
	if c.condStore() {
		s.pool.offer(w)
	}
	ok = true
	return w, nil
}

// watch is a running Watch: a connection in IDLE, paused for Folders and,
// if it is the pool's lender, lent to operations.
type watch struct {
	pool    *userPool
	c       *conn
	id      backend.FolderID
	changed func()      // the caller's: reports a change
	stop    func() bool // stops the AfterFunc of the caller's context

	// The connection's state: owned by whoever runs commands on it (the
	// holder of mu for Folders of a watch that does not lend; the
	// borrower, or the goroutine taking it back, for one that does).
	idle  *imapclient.IdleCommand
	sel   selection // the watched folder's selection
	marks marks     // the watched folder's marks when last read
	// reported is set when the server reported a change since the marks
	// were read: they are out of date.
	reported atomic.Bool
	// borrowed is set while a borrower runs its commands, missed when
	// the server reported a change meanwhile: resume reports it then,
	// together with any change the marks show (a borrower's own MOVE
	// is told as an EXPUNGE and moves the marks too).
	borrowed, missed atomic.Bool

	// Guarded by pool.mu.
	lender bool // operations borrow the connection (pool.offer)
	lent   bool // lent, or being taken back
	gone   bool // ended: the connection is closed when it comes back

	mu sync.Mutex // serialises Folders of a watch that does not lend

	once sync.Once
	done chan struct{}
	err  error // set before done closes
}

// marks are the change marks of the watched folder.
type marks struct {
	uidValidity, uidNext, messages uint32
	highestModSeq                  uint64
}

func selectMarks(d *imap.SelectData) marks {
	return marks{d.UIDValidity, uint32(d.UIDNext), d.NumMessages, d.HighestModSeq}
}

// end records why the watch ended and closes its connection (unless it is
// lent: then it is closed when it comes back), once.
func (w *watch) end(err error) {
	w.once.Do(func() {
		w.err = err
		if !w.pool.unwatch(w) {
			w.c.close()
		}
		close(w.done)
	})
}

func (w *watch) Done() <-chan struct{} { return w.done }

func (w *watch) Err() error {
	select {
	case <-w.done:
		return w.err
	default:
		return nil
	}
}

func (w *watch) Close() error {
	if w.stop != nil {
		w.stop()
	}
	w.end(nil)
	return nil
}

// Folders lists the folders with their marks on the watch's connection:
// borrowed like any operation's when the watch lends it, else by leaving
// IDLE (DONE) and starting it again. A failure ends the watch.
func (w *watch) Folders(ctx context.Context) ([]backend.Folder, error) {
	select {
	case <-w.done:
		return nil, fmt.Errorf("%w: the watch has ended", backend.ErrUnavailable)
	default:
	}
	if w.pool.lends(w) {
		return w.borrowedFolders(ctx)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// Any command would wait for the server's answer; the caller's
	// cancellation ends the watch instead.
	stop := context.AfterFunc(ctx, func() { w.end(fmt.Errorf("watch ended: %w", ctx.Err())) })
	defer stop()
	fail := func(what string, err error) ([]backend.Folder, error) {
		err = fmt.Errorf("%w: %s on the watch connection: %w", backend.ErrUnavailable, what, err)
		w.end(err)
		return nil, err
	}
	if err := w.pause(); err != nil {
		return fail("leaving IDLE", err)
	}
	folders, err := listFolders(w.c)
	if err != nil {
		return fail("LIST", err)
	}
	idle, err := w.c.client.Idle()
	if err != nil {
		return fail("IDLE", err)
	}
	w.idle = idle
	return folders, nil
}

// borrowedFolders is Folders on a connection the watch lends: it waits
// its turn like an operation (never opening a connection of its own).
func (w *watch) borrowedFolders(ctx context.Context) ([]backend.Folder, error) {
	c, _, err := w.pool.acquire(ctx, w.c.key, "", borrowOnly)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { c.close() })
	folders, err := listFolders(c)
	stop()
	w.pool.release(c, !c.broken(err))
	if err != nil {
		return nil, fmt.Errorf("%w: LIST on the watch connection: %w", backend.ErrUnavailable, err)
	}
	return folders, nil
}

// pause leaves IDLE so that the connection can run other commands.
func (w *watch) pause() error {
	if err := w.idle.Close(); err != nil {
		return err
	}
	err := w.idle.Wait()
	w.idle = nil
	return err
}

// pauseToLend leaves IDLE to lend the connection. If the server reported
// changes since the marks were read, the marks are read again, so that
// resume does not report those a second time: STATUS, which on the
// selected folder gives the session's view (Dovecot: what it has told
// this session), then NOOP, which has the server tell the rest — a
// change is either in the marks read or reported now or later.
func (w *watch) pauseToLend() error {
	if err := w.pause(); err != nil {
		return err
	}
	if w.reported.Swap(false) {
		m, err := w.status()
		if err != nil {
			return err
		}
		w.marks = m
		if err := w.c.client.Noop().Wait(); err != nil {
			return err
		}
	}
	w.borrowed.Store(true)
	return nil
}

// status reads the marks of the watched folder, which is selected.
func (w *watch) status() (marks, error) {
	data, err := w.c.client.Status(w.sel.name, &imap.StatusOptions{
		UIDValidity: true, UIDNext: true, NumMessages: true, HighestModSeq: true,
	}).Wait()
	if err != nil {
		return marks{}, err
	}
	if data.UIDValidity != w.sel.uv {
		return marks{}, fmt.Errorf("%w: %s: UIDVALIDITY %d, watch has %d", backend.ErrUIDValidityChanged, w.sel.name, data.UIDValidity, w.sel.uv)
	}
	return marks{data.UIDValidity, uint32(data.UIDNext), derefOr(data.NumMessages), data.HighestModSeq}, nil
}

// resume makes a lent connection watch again: it reads the watched
// folder's marks (STATUS if it is still selected, else EXAMINE), reports
// a change once if they moved since they were last read or the server
// told the borrower of one, and starts IDLE. The marks catch a change a
// borrower's command swallowed (its FETCH carried another client's flag
// change, its own STORE or EXPUNGE) or that happened while another
// folder was selected; what the server has not yet told this session is
// not in STATUS's marks, and the server tells it when IDLE starts.
func (w *watch) resume() error {
	c := w.c
	w.borrowed.Store(false)
	missed := w.missed.Swap(false)
	w.reported.Store(false)
	var m marks
	if c.selected == w.sel {
		var err error
		if m, err = w.status(); err != nil {
			return err
		}
	} else {
		_, data, err := openFolder(c, w.id, true)
		if err != nil {
			return err
		}
		m = selectMarks(data)
	}
	if m != w.marks || missed {
		w.marks = m
		w.changed()
	}
	idle, err := c.client.Idle()
	if err != nil {
		return err
	}
	w.idle = idle
	return nil
}

func derefOr(p *uint32) uint32 {
	if p == nil {
		return 0
	}
	return *p
}

// watchError turns the failure of a watch being set up into its error:
// ctx's when ctx ended, else ErrUnavailable.
func watchError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("watch ended: %w", ctx.Err())
	}
	if err == nil {
		err = errors.New("connection closed")
	}
	return fmt.Errorf("%w: watching: %w", backend.ErrUnavailable, err)
}
