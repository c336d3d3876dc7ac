package imapstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/easgate/easgate/backend"
)

// session is a backend.Session: a user's credentials and a pool to borrow
// connections from, one per operation.
type session struct {
	pool     *userPool
	key      [32]byte
	password string
	closed   atomic.Bool
}

var _ backend.Session = (*session)(nil)

// Close implements backend.Session.
func (s *session) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.pool.unref()
	return nil
}

// do runs f on a borrowed connection. If the connection turns out to be
// dead (the server restarted, timed out the idle connection, or dropped
// it because another connection deleted its selected mailbox) before f
// sent anything that changes the mailbox, f runs once more on a new
// connection. Errors that broke the connection are wrapped with
// backend.ErrUnavailable.
func (s *session) do(ctx context.Context, f func(c *conn) error) error {
	if s.closed.Load() {
		return backend.ErrClosed
	}
	for attempt := 0; ; attempt++ {
		c, fresh, err := s.pool.acquire(ctx, s.key, s.password, borrowFirst)
		if err != nil {
			return err
		}
		c.mutated = false
		stop := abortOnCancel(ctx, c)
		err = f(c)
		stop()
		broken := c.broken(err)
		s.pool.release(c, !broken)
		if err == nil {
			return nil
		}
		if !broken {
			return err
		}
		if !c.mutated && !fresh && attempt == 0 && ctx.Err() == nil {
			s.pool.s.log.Info("imap connection lost, retrying", "user", s.pool.user, "err", err)
			continue
		}
		if errors.Is(err, backend.ErrUnavailable) {
			return err
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %w (%v)", backend.ErrUnavailable, ctx.Err(), err)
		}
		return fmt.Errorf("%w: %w", backend.ErrUnavailable, err)
	}
}

// lentCancelGrace is how long an operation on a Watch's connection may
// go on after its context ended before the connection is closed under it.
const lentCancelGrace = 30 * time.Second

// abortOnCancel makes the end of ctx abort the commands running on c by
// closing it, until stop is called. A Watch's connection is spared for
// lentCancelGrace: closing it would end the user's watch (IDLE comes
// back only after a backoff), and an operation's commands on it — a
// window's reads at most, never a stream — end soon anyway; one that
// does not (a server that stopped answering) is cut off then.
func abortOnCancel(ctx context.Context, c *conn) (stop func()) {
	if c.watch == nil {
		s := context.AfterFunc(ctx, c.close)
		return func() { s() }
	}
	var mu sync.Mutex
	done := false
	var timer *time.Timer
	s := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !done {
			timer = time.AfterFunc(lentCancelGrace, c.close)
		}
	})
	return func() {
		s()
		mu.Lock()
		defer mu.Unlock()
		done = true
		if timer != nil {
			timer.Stop()
		}
	}
}

// folderID makes the ID of the folder called name with uidValidity (0 for
// a folder that cannot be selected). The UIDVALIDITY in the ID means a
// recreated folder gets a new ID, and a stale ID is noticed before any
// UID is used with it.
func folderID(name string, uidValidity uint32) backend.FolderID {
	return backend.FolderID(strconv.FormatUint(uint64(uidValidity), 10) + "." + name)
}

// parseFolderID splits an ID made by folderID. A malformed ID names no
// folder.
func parseFolderID(id backend.FolderID) (name string, uidValidity uint32, err error) {
	uv, name, ok := strings.Cut(string(id), ".")
	n, perr := strconv.ParseUint(uv, 10, 32)
	if !ok || perr != nil || name == "" {
		return "", 0, fmt.Errorf("%w: malformed folder ID %q", backend.ErrFolderNotFound, id)
	}
	return name, uint32(n), nil
}

// selectFolder selects the folder id names (with CONDSTORE when the server
// has it) and checks its UIDVALIDITY. It selects on every call: a
// selection kept from an earlier operation could belong to a folder since
// deleted and recreated, whose UIDs mean other messages.
func selectFolder(c *conn, id backend.FolderID) (string, *imap.SelectData, error) {
	return openFolder(c, id, false)
}

// examineFolder opens the folder id names for an operation that only
// reads (BODY.PEEK, FLAGS, SEARCH). A selection this connection made of
// the same folder — the same name and UIDVALIDITY, checked when it was
// made — is brought up to date with NOOP (RFC 9051 6.1.2: the server
// reports new messages, expunges and flag changes) and used again:
// EXAMINE of a 2,000-message folder costs Dovecot 2–5 ms, NOOP 0.1 ms.
// The selected mailbox is the one the UIDs were checked against even if
// it was renamed since; one deleted since fails the NOOP or the read
// (Dovecot ends the session), never reads another folder's messages.
// Otherwise the folder is opened read-only (EXAMINE, RFC 9051 6.3.3),
// which needs no index write to take \Recent as SELECT does.
//
// The NOOP is waited for before the read is sent: sent together, Dovecot
// and go-imap's server may both answer the read from the selection as it
// was before the NOOP (tried: the Sync tests of messages expunged
// elsewhere between two rounds then failed now and then on both).
func examineFolder(c *conn, id backend.FolderID) error {
	name, uv, err := parseFolderID(id)
	if err != nil {
		return err
	}
	if mb := c.client.Mailbox(); mb != nil && mb.Name == name && c.selected == (selection{name, uv}) {
		err := c.client.Noop().Wait()
		if err == nil || !isNo(err) {
			return err
		}
	}
	_, _, err = openFolder(c, id, true)
	return err
}

// openFolder selects (or, readOnly, examines) the folder id names and
// checks its UIDVALIDITY, recording the selection for examineFolder.
func openFolder(c *conn, id backend.FolderID, readOnly bool) (string, *imap.SelectData, error) {
	name, uv, err := parseFolderID(id)
	if err != nil {
		return "", nil, err
	}
	c.selected = selection{}
	opts := &imap.SelectOptions{ReadOnly: readOnly, CondStore: c.condStore()}
	data, err := c.client.Select(name, opts).Wait()
	if err != nil {
		if isNo(err) {
			return "", nil, fmt.Errorf("%w: %s: %w", backend.ErrFolderNotFound, name, err)
		}
		return "", nil, err
	}
	if data.UIDValidity != uv {
		return "", nil, fmt.Errorf("%w: %s: UIDVALIDITY %d, ID has %d", backend.ErrUIDValidityChanged, name, data.UIDValidity, uv)
	}
	c.selected = selection{name, uv}
	return name, data, nil
}

// isNo reports whether err is the server's NO (or BAD) to a command, as
// opposed to a broken connection.
func isNo(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie)
}

// hasCode reports whether err is a server response with the given code.
func hasCode(err error, code imap.ResponseCode) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && ie.Code == code
}

// toIMAPUIDs converts a backend UID set for a command.
func toIMAPUIDs(s backend.UIDSet) imap.UIDSet {
	out := make(imap.UIDSet, len(s))
	for i, r := range s {
		out[i] = imap.UIDRange{Start: imap.UID(r.Start), Stop: imap.UID(r.Stop)}
	}
	return out
}

// fromIMAPUIDs converts a UID set from a response; a NumSet of another
// kind or with "*" yields what it can.
func fromIMAPUIDs(n imap.NumSet) backend.UIDSet {
	var out backend.UIDSet
	us, ok := n.(imap.UIDSet)
	if !ok {
		return out
	}
	for _, r := range us {
		a, b := backend.UID(r.Start), backend.UID(r.Stop)
		if b == 0 { // "*": only a server bug puts it in a response
			b = a
		}
		if a > b {
			a, b = b, a
		}
		out = out.Union(backend.UIDSet{{Start: a, Stop: b}})
	}
	return out
}
