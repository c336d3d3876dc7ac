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

// Watch implements backend.Watcher with IMAP IDLE on a connection of its
// own (a watch lasts up to an hour; holding a pooled connection that long
// would starve the user's other requests). It first compares the
// folder's change marks at SELECT with since, which covers changes made
// before the IDLE started; Dovecot reports anything between SELECT and
// IDLE when IDLE begins.
//
// The unilateral-data handlers only signal a channel: they run in the
// client's reader goroutine, where calling the client would deadlock.
func (s *session) Watch(ctx context.Context, id backend.FolderID, since *backend.FolderState) error {
	if s.closed.Load() {
		return backend.ErrClosed
	}
	var armed atomic.Bool
	changed := make(chan struct{}, 1)
	signal := func() {
		if armed.Load() {
			select {
			case changed <- struct{}{}:
			default:
			}
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

	_, sel, err := selectFolder(c, id)
	if err != nil {
		if c.broken(err) {
			return s.watchEnd(ctx, err)
		}
		return err
	}
	if since != nil {
		if sel.UIDValidity != since.UIDValidity {
			return fmt.Errorf("%w: UIDVALIDITY %d, state has %d", backend.ErrUIDValidityChanged, sel.UIDValidity, since.UIDValidity)
		}
		if backend.UID(sel.UIDNext) != since.UIDNext || sel.NumMessages != since.Messages ||
			(since.HighestModSeq != 0 && sel.HighestModSeq != since.HighestModSeq) {
			return nil
		}
	}
	if !c.has(imap.CapIdle) && !c.has(imap.CapIMAP4rev2) {
		return fmt.Errorf("%w: the IMAP server has no IDLE", backend.ErrUnavailable)
	}
	armed.Store(true)
	idle, err := c.client.Idle()
	if err != nil {
		return s.watchEnd(ctx, err)
	}
	select {
	case <-changed:
	case <-ctx.Done():
		return s.watchEnd(ctx, ctx.Err())
	case <-c.client.Closed():
		return s.watchEnd(ctx, fmt.Errorf("connection closed during IDLE"))
	}
	// Leave IDLE politely; the connection is closed either way.
	if err := idle.Close(); err == nil {
		idle.Wait()
	}
	return nil
}

// watchEnd turns the end of a watch into its error: ctx's when ctx ended,
// else ErrUnavailable.
func (s *session) watchEnd(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("watch ended: %w", ctx.Err())
	}
	return fmt.Errorf("%w: watching: %w", backend.ErrUnavailable, err)
}
