package eas

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/easgate/easgate/backend"
)

// errNoMailStore is the cause when a handler asks for the mailbox of a
// server configured without Config.Mail.
var errNoMailStore = errors.New("eas: no mail store configured (Config.Mail)")

// mailbox is a request's mail session, opened on first use with the
// credentials the request authenticated with and closed by the server when
// the request ends. The password lives only here, in an unexported field
// behind a pointer, so that printing a Request never shows it.
type mailbox struct {
	store    backend.Store
	user     string
	password string

	mu      sync.Mutex
	opened  bool
	session backend.Session
	err     error
}

// newMailbox returns the unopened mailbox of an authenticated request.
func (s *Server) newMailbox(cred credentials) *mailbox {
	return &mailbox{store: s.cfg.Mail, user: cred.user, password: cred.password}
}

// Mailbox returns the user's mail session, opening it on the first call
// (backend.Store.Open with the request's credentials) and returning the same
// session, or the same error, on later calls. The server closes it when the
// request ends: handlers must not Close it. It is safe for concurrent use.
//
// Errors wrap backend.ErrAuthFailed when the mail server refuses the
// password the auth cache still trusted (the phone sees 401 and the cache
// entry is forgotten), backend.ErrUnavailable when the mail server cannot be
// reached (503, or Status 111 from 14.0), or say that no mail store is
// configured (a server error). A handler returns them as they are.
func (r *Request) Mailbox(ctx context.Context) (backend.Session, error) {
	m := r.mail
	if m == nil || m.store == nil {
		return nil, errNoMailStore
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.opened {
		m.opened = true
		m.session, m.err = m.store.Open(ctx, m.user, m.password)
		if m.err != nil {
			m.err = fmt.Errorf("opening the mailbox of %s: %w", m.user, m.err)
		}
	}
	return m.session, m.err
}

// MailboxOpener returns a function that opens another mail session of the
// request's user, which its caller closes, for work that goes on after
// the request ended (Sync's read ahead of the next window); nil when no
// mail store is configured.
func (r *Request) MailboxOpener() func(context.Context) (backend.Session, error) {
	m := r.mail
	if m == nil || m.store == nil {
		return nil
	}
	store, user, password := m.store, m.user, m.password
	return func(ctx context.Context) (backend.Session, error) { return store.Open(ctx, user, password) }
}

// closeMailbox closes the request's mail session if a handler opened one.
// A failure to close costs at most a pooled connection, so it is only
// logged.
func (s *Server) closeMailbox(req *Request) {
	m := req.mail
	if m == nil {
		return
	}
	m.mu.Lock()
	sess := m.session
	m.opened, m.session, m.err = true, nil, fmt.Errorf("mailbox used after the request ended: %w", backend.ErrClosed)
	m.mu.Unlock()
	if sess == nil {
		return
	}
	if err := sess.Close(); err != nil {
		s.log.LogAttrs(context.Background(), slog.LevelWarn, "closing the mail session failed",
			slog.String("user", req.User), slog.String("device", req.DeviceID), slog.String("err", err.Error()))
	}
}
