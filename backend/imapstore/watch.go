package imapstore

import (
	"context"
	"fmt"
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
func (s *session) Watch(ctx context.Context, id backend.FolderID, ready, changed func()) error {
	if s.closed.Load() {
		return backend.ErrClosed
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
		return err
	}
	defer c.close()
	if !s.pool.watch(c) {
		return fmt.Errorf("%w: store closed", backend.ErrUnavailable)
	}
	defer s.pool.unwatch(c)
	stop := context.AfterFunc(ctx, func() { c.close() })
	defer stop()

	if _, _, err := selectFolder(c, id); err != nil {
		if c.broken(err) {
			return s.watchEnd(ctx, err)
		}
		return err
	}
	if !c.has(imap.CapIdle) && !c.has(imap.CapIMAP4rev2) {
		return fmt.Errorf("%w: the IMAP server has no IDLE", backend.ErrUnavailable)
	}
	// Armed before IDLE: what the server reports as IDLE begins happened
	// after SELECT, so it is news.
	armed.Store(true)
	idle, err := c.client.Idle()
	if err != nil {
		return s.watchEnd(ctx, err)
	}
	ready()
	select {
	case <-ctx.Done():
	case <-c.client.Closed():
		return s.watchEnd(ctx, fmt.Errorf("connection closed during IDLE"))
	}
	// Leave IDLE politely when the connection still works; it is closed
	// either way.
	if err := idle.Close(); err == nil {
		idle.Wait()
	}
	return s.watchEnd(ctx, ctx.Err())
}

// watchEnd turns the end of a watch into its error: ctx's when ctx ended,
// else ErrUnavailable.
func (s *session) watchEnd(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("watch ended: %w", ctx.Err())
	}
	return fmt.Errorf("%w: watching: %w", backend.ErrUnavailable, err)
}
