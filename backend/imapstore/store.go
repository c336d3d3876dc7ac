// Package imapstore implements backend.Store over IMAP with the go-imap v2
// client. It exists so that the gateway can treat an IMAP server as the
// mail store EAS expects: per-user sessions drawn from a bounded
// connection pool, folders with stable IDs and roles, change detection
// with CONDSTORE where the server has it and a UID/flag diff where it
// does not, and single-message moves, deletes and appends that report the
// new UIDs (UIDPLUS).
//
// go-imap v2.0.0-beta.8 has no QRESYNC (a VANISHED response would kill the
// connection), so QRESYNC is never enabled and expunges are found by
// diffing UID sets (UID SEARCH RETURN (ALL), compact ESEARCH). It has no
// MAILBOXID either (RFC 8474), and Dovecot 2.3 does not offer OBJECTID, so
// folder IDs derive from the folder's name and UIDVALIDITY.
//
// Every command is fully consumed before a connection goes back to the
// pool, one command runs at a time per connection, and no unilateral-data
// handler calls back into the client.
package imapstore

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/easgate/easgate/backend"
)

// Security is how the connection to the IMAP server is protected.
type Security int

// The security modes.
const (
	// SecurityNone: plain text (loopback and tests only).
	SecurityNone Security = iota
	// SecurityStartTLS: plain text upgraded with STARTTLS before login.
	SecurityStartTLS
	// SecurityTLS: TLS from the first byte (port 993).
	SecurityTLS
)

// String returns "none", "starttls" or "tls".
func (s Security) String() string {
	switch s {
	case SecurityNone:
		return "none"
	case SecurityStartTLS:
		return "starttls"
	case SecurityTLS:
		return "tls"
	}
	return fmt.Sprintf("Security(%d)", int(s))
}

// ParseSecurity parses "none", "starttls" or "tls".
func ParseSecurity(text string) (Security, error) {
	switch text {
	case "none":
		return SecurityNone, nil
	case "starttls":
		return SecurityStartTLS, nil
	case "tls":
		return SecurityTLS, nil
	}
	return 0, fmt.Errorf("imapstore: unknown security %q (want none, starttls or tls)", text)
}

// Defaults for the zero values of Options.
const (
	DefaultDialTimeout = 10 * time.Second
	// DefaultMaxConnsPerUser is two: a phone's requests rarely overlap,
	// two let a Sync run beside a long attachment download, and each
	// connection costs the mail server a session and the gateway about
	// 20 KB. While the user's Watch runs, operations borrow its
	// connection first (LendWait), so pooled ones are opened only
	// beside a long operation or a download.
	DefaultMaxConnsPerUser = 2
	DefaultIdleTimeout     = 5 * time.Minute
	// DefaultLendWait is how long an operation waits for the connection
	// of the user's Watch while another operation has it (a Sync, a
	// Ping's check: milliseconds) before it opens one of its own.
	DefaultLendWait = time.Second
)

// Options configure a Store.
type Options struct {
	// Addr is the IMAP server, "host:port".
	Addr string
	// Security is none, STARTTLS or TLS.
	Security Security
	// TLSConfig is used for STARTTLS and TLS; nil means the system roots
	// with ServerName taken from Addr.
	TLSConfig *tls.Config
	// DialTimeout bounds connecting, the TLS handshake and the greeting;
	// 0 means DefaultDialTimeout.
	DialTimeout time.Duration
	// MaxConnsPerUser bounds the connections one user holds open; callers
	// beyond it wait for a free one. 0 means DefaultMaxConnsPerUser.
	MaxConnsPerUser int
	// IdleTimeout closes connections unused for this long; 0 means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// LendWait is how long an operation waits for the connection of the
	// user's running Watch, lent to another operation, before it opens
	// one of its own (up to MaxConnsPerUser); 0 means DefaultLendWait,
	// negative means operations never borrow it. A Watch lends its
	// connection only on servers with CONDSTORE.
	LendWait time.Duration
	// Logger receives connection events (never passwords or message
	// data); nil discards them.
	Logger *slog.Logger
	// DebugWriter, if set, receives the raw IMAP traffic of every
	// connection, credentials included. Writes are serialised, so any
	// io.Writer will do.
	DebugWriter io.Writer
}

// Store is a backend.Store on one IMAP server. It is safe for concurrent
// use. Close it to close its connections.
type Store struct {
	opts   Options
	log    *slog.Logger
	debug  io.Writer
	hmacK  []byte // key for remembering passwords as HMACs only
	stop   chan struct{}
	reaped chan struct{}

	mu     sync.Mutex
	users  map[string]*userPool
	closed bool
}

var _ backend.Store = (*Store)(nil)

// New returns a Store for opts. It does not connect until a user opens a
// session.
func New(opts Options) (*Store, error) {
	if opts.Addr == "" {
		return nil, errors.New("imapstore: no server address")
	}
	if opts.Security < SecurityNone || opts.Security > SecurityTLS {
		return nil, fmt.Errorf("imapstore: invalid security %v", opts.Security)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	if opts.MaxConnsPerUser <= 0 {
		opts.MaxConnsPerUser = DefaultMaxConnsPerUser
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if opts.LendWait == 0 {
		opts.LendWait = DefaultLendWait
	}
	s := &Store{
		opts:   opts,
		log:    opts.Logger,
		hmacK:  make([]byte, 32),
		stop:   make(chan struct{}),
		reaped: make(chan struct{}),
		users:  make(map[string]*userPool),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if opts.DebugWriter != nil {
		s.debug = &lockedWriter{w: opts.DebugWriter}
	}
	if _, err := rand.Read(s.hmacK); err != nil {
		return nil, err
	}
	go s.reapLoop()
	return s, nil
}

// Authenticate implements backend.Authenticator: it opens a session (a
// LOGIN unless the user's pool already holds connections logged in with
// this very password) and closes it.
func (s *Store) Authenticate(ctx context.Context, user, password string) error {
	sess, err := s.Open(ctx, user, password)
	if err != nil {
		return err
	}
	return sess.Close()
}

// Open implements backend.Store. A pooled user whose password matches the
// one the pool logged in with gets a session without a round trip;
// otherwise a new connection logs in first.
func (s *Store) Open(ctx context.Context, user, password string) (backend.Session, error) {
	p, err := s.pool(user)
	if err != nil {
		return nil, err
	}
	key := s.passwordKey(user, password)
	if !p.knows(key, time.Now()) {
		if err := p.verify(ctx, key, password); err != nil {
			p.unref()
			return nil, err
		}
	}
	return &session{pool: p, key: key, password: password}, nil
}

// Close closes every connection, ending running Watch calls, and stops
// the idle reaper. Sessions fail
// with backend.ErrUnavailable afterwards.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	pools := s.users
	s.users = nil
	s.mu.Unlock()
	close(s.stop)
	<-s.reaped
	for _, p := range pools {
		p.closeAll()
	}
	return nil
}

// PoolStats describes one user's connections.
type PoolStats struct {
	// Open is the number of connections, idle or in use.
	Open int
	// Idle is the number of connections waiting in the pool.
	Idle int
	// MaxOpen is the most connections that were open at one time.
	MaxOpen int
	// Dials counts the pooled connections made (and logged in) so far.
	Dials int
	// Watching is the number of connections held by running Watch calls;
	// they are not counted in Open and not bound by MaxConnsPerUser.
	Watching int
	// Lends counts the operations that ran on a Watch's connection.
	Lends int
	// Lent is 1 while the connection of the user's Watch is lent (or
	// being taken back), else 0.
	Lent int
	// Waiting is the number of operations waiting for that connection.
	Waiting int
}

// Stats returns the pool statistics of user (zero if the user has no
// pool).
func (s *Store) Stats(user string) PoolStats {
	s.mu.Lock()
	p := s.users[user]
	s.mu.Unlock()
	if p == nil {
		return PoolStats{}
	}
	return p.stats()
}

func (s *Store) pool(user string) (*userPool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, fmt.Errorf("%w: store closed", backend.ErrUnavailable)
	}
	p := s.users[user]
	if p == nil {
		p = newUserPool(s, user)
		s.users[user] = p
	}
	p.ref()
	return p, nil
}

// passwordKey is what a pool remembers of a password: an HMAC under a key
// that lives only in this process.
func (s *Store) passwordKey(user, password string) [32]byte {
	m := hmac.New(sha256.New, s.hmacK)
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(password))
	var k [32]byte
	copy(k[:], m.Sum(nil))
	return k
}

// reapLoop closes idle connections past IdleTimeout and forgets users
// without connections.
func (s *Store) reapLoop() {
	defer close(s.reaped)
	t := time.NewTicker(max(s.opts.IdleTimeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			s.reap(now)
		}
	}
}

func (s *Store) reap(now time.Time) {
	s.mu.Lock()
	pools := make([]*userPool, 0, len(s.users))
	for _, p := range s.users {
		pools = append(pools, p)
	}
	s.mu.Unlock()
	for _, p := range pools {
		p.reapIdle(now.Add(-s.opts.IdleTimeout))
		s.mu.Lock()
		// A pool without connections or sessions is forgotten; pool()
		// takes its reference under s.mu, so none can appear meanwhile.
		if s.users[p.user] == p && p.unused() {
			delete(s.users, p.user)
		}
		s.mu.Unlock()
	}
}

// lockedWriter serialises writes: go-imap writes debug output from its
// reader and writer goroutines at once.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
