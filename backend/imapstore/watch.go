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
// connection of its own: a watch lasts as long as anyone waits, and
// holding a pooled connection that long would starve the user's other
// requests. The connection is counted in PoolStats.Watching and closed by
// Store.Close. The client re-issues IDLE before the server's 30-minute
// limit by itself.
//
// Changes between SELECT and IDLE are reported by the server when IDLE
// begins (untagged EXISTS, EXPUNGE, FETCH), so they reach changed too.
// The unilateral-data handlers only call changed: they run in the client's
// reader goroutine, where calling the client would deadlock (go-imap
// v2.0.0-beta.8).
func (s *session) Watch(ctx context.Context, id backend.FolderID, changed func()) (backend.Watch, error) {
	if s.closed.Load() {
		return nil, backend.ErrClosed
	}
	var armed atomic.Bool
	signal := func() {
		if armed.Load() {
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
	if !s.pool.watch(c) {
		c.close()
		return nil, fmt.Errorf("%w: store closed", backend.ErrUnavailable)
	}
	w := &watch{pool: s.pool, c: c, done: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			w.end(nil)
		}
	}()
	// Until IDLE runs, the caller's cancellation aborts by closing.
	stop := context.AfterFunc(ctx, func() { c.close() })
	if _, _, err := selectFolder(c, id); err != nil {
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
	// Armed before IDLE: what the server reports as IDLE begins happened
	// after SELECT, so it is news.
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
	ok = true
	return w, nil
}

// watch is a running Watch: a connection in IDLE, paused for Folders.
type watch struct {
	pool *userPool
	c    *conn
	stop func() bool // stops the AfterFunc of the caller's context

	mu   sync.Mutex // serialises Folders
	idle *imapclient.IdleCommand

	once sync.Once
	done chan struct{}
	err  error // set before done closes
}

// end closes the connection and records why, once.
func (w *watch) end(err error) {
	w.once.Do(func() {
		w.err = err
		w.c.close()
		w.pool.unwatch(w.c)
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

// Folders leaves IDLE (DONE), lists the folders with their marks, and
// starts IDLE again. A failure ends the watch.
func (w *watch) Folders(ctx context.Context) ([]backend.Folder, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case <-w.done:
		return nil, fmt.Errorf("%w: the watch has ended", backend.ErrUnavailable)
	default:
	}
	// Any command would wait for the server's answer; the caller's
	// cancellation ends the watch instead.
	stop := context.AfterFunc(ctx, func() { w.end(fmt.Errorf("watch ended: %w", ctx.Err())) })
	defer stop()
	fail := func(what string, err error) ([]backend.Folder, error) {
		err = fmt.Errorf("%w: %s on the watch connection: %w", backend.ErrUnavailable, what, err)
		w.end(err)
		return nil, err
	}
	if err := w.idle.Close(); err != nil {
		return fail("leaving IDLE", err)
	}
	if err := w.idle.Wait(); err != nil {
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
