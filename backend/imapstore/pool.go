package imapstore

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easgate/easgate/backend"
)

// userPool holds one user's IMAP connections. A connection is either idle
// (in p.idle) or lent to exactly one operation, which holds one of the
// p.slots tokens meanwhile; so at most MaxConnsPerUser operations run at
// once, each on a connection of its own, one command at a time.
//
// A running Watch's connection may be the pool's lender: operations
// borrow it (it leaves IDLE meanwhile) before they open connections of
// their own, wait up to LendWait when another operation has it, and the
// pool keeps no idle connection beside it. So a user whose devices wait
// in Ping holds one IMAP connection, not one plus the pool's, while mail
// arrives and the devices sync it.
type userPool struct {
	s     *Store
	user  string
	slots chan struct{}

	mu         sync.Mutex
	key        [32]byte  // HMAC of the password the pool last logged in with
	verifiedAt time.Time // when key last passed a LOGIN; zero: never
	idle       []*conn   // most recently used last
	open       int       // idle + lent, Watch connections not counted
	maxOpen    int
	dials      int
	lendCount  int             // operations that ran on the lender's connection
	refs       int             // sessions (and Opens in progress) using the pool
	watching   map[*watch]bool // running Watches, outside the bound
	lender     *watch          // the Watch whose connection operations borrow; nil if none
	waiting    []*waiter       // operations waiting for the lender's connection, oldest first
	closed     bool
}

// waiter is an operation waiting for the lender's connection (or any
// connection logged in with key that comes back meanwhile): it receives
// it on c, or nil when the lender ended.
type waiter struct {
	key [32]byte
	c   chan *conn
}

// borrowing says whether an operation may run on the lender's connection.
type borrowing int

const (
	// borrowFirst prefers the lender's connection, waiting up to
	// LendWait for it when it is lent, then opens one.
	borrowFirst borrowing = iota
	// borrowNever is for connections held for long (streamed messages
	// and parts): the watch would stop watching all that time.
	borrowNever
	// borrowOnly is the watch's own use (Folders): its connection or
	// another lent to the same waiters, never a new one.
	borrowOnly
)

func newUserPool(s *Store, user string) *userPool {
	return &userPool{s: s, user: user, slots: make(chan struct{}, s.opts.MaxConnsPerUser)}
}

func (p *userPool) ref() { p.mu.Lock(); p.refs++; p.mu.Unlock() }

func (p *userPool) unref() { p.mu.Lock(); p.refs--; p.mu.Unlock() }

// knows reports whether key is the password the pool logged in with, and
// that login is recent enough (IdleTimeout) to trust without asking the
// server again.
func (p *userPool) knows(key [32]byte, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.verifiedAt.IsZero() && p.key == key && now.Sub(p.verifiedAt) < p.s.opts.IdleTimeout
}

// verify logs in with password on a new connection and, if the server
// accepts it, makes key the pool's password: connections made with another
// password are closed as they come back.
func (p *userPool) verify(ctx context.Context, key [32]byte, password string) error {
	if err := p.takeSlot(ctx); err != nil {
		return err
	}
	p.mu.Lock()
	// Holding a slot means fewer than MaxConnsPerUser are lent, so if the
	// pool is full an idle connection exists to make room.
	if p.open >= cap(p.slots) && len(p.idle) > 0 {
		old := p.idle[0]
		p.idle = p.idle[1:]
		p.open--
		old.close()
	}
	p.open++
	p.mu.Unlock()

	c, err := p.dial(ctx, key, password, nil)
	p.mu.Lock()
	if err != nil {
		p.open--
	} else {
		p.dials++
		p.maxOpen = max(p.maxOpen, p.open)
		if p.key != key {
			for _, old := range p.idle {
				old.close()
				p.open--
			}
			p.idle = nil
			p.key = key
		}
		p.verifiedAt = time.Now()
	}
	p.mu.Unlock()
	if err == nil {
		p.release(c, true)
	} else {
		<-p.slots
	}
	return err
}

func (p *userPool) takeSlot(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting for a connection: %w", backend.ErrUnavailable, ctx.Err())
	}
}

// acquire lends a connection logged in with the session's password: an
// idle one if there is one, the lender's as b allows, else a new one
// (fresh is true). password is only used to log in; borrowOnly needs
// none.
func (p *userPool) acquire(ctx context.Context, key [32]byte, password string, b borrowing) (c *conn, fresh bool, err error) {
	if err := p.takeSlot(ctx); err != nil {
		return nil, false, err
	}
	c, err = p.take(ctx, key, b)
	if err != nil || c != nil {
		if err != nil {
			<-p.slots
		}
		return c, false, err
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, false, fmt.Errorf("%w: store closed", backend.ErrUnavailable)
	}
	if p.open >= cap(p.slots) && len(p.idle) > 0 {
		// Make room: the idle ones are logged in as someone else's
		// password or dead.
		old := p.idle[0]
		p.idle = p.idle[1:]
		p.open--
		old.close()
	}
	p.open++
	p.mu.Unlock()

	c, err = p.dial(ctx, key, password, nil)
	p.mu.Lock()
	if err != nil {
		p.open--
	} else {
		p.dials++
		p.maxOpen = max(p.maxOpen, p.open)
	}
	p.mu.Unlock()
	if err != nil {
		<-p.slots
		return nil, false, err
	}
	return c, true, nil
}

// errNoLender is borrowOnly's failure: the watch ended.
var errNoLender = fmt.Errorf("%w: the watch has ended", backend.ErrUnavailable)

// take finds an open connection for an operation holding a slot: an idle
// one, or the lender's (waiting for it as b allows). It returns nil when
// the operation should open one.
func (p *userPool) take(ctx context.Context, key [32]byte, b borrowing) (*conn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, fmt.Errorf("%w: store closed", backend.ErrUnavailable)
	}
	if b != borrowOnly {
		for i := len(p.idle) - 1; i >= 0; i-- {
			c := p.idle[i]
			if c.isClosed() {
				// The server hung up on it while it waited (BYE, restart).
				p.idle = append(p.idle[:i], p.idle[i+1:]...)
				p.open--
				continue
			}
			if c.key != key {
				continue
			}
			p.idle = append(p.idle[:i], p.idle[i+1:]...)
			p.mu.Unlock()
			return c, nil
		}
	}
	w := p.lender
	if b == borrowNever || w == nil || w.c.key != key {
		p.mu.Unlock()
		if b == borrowOnly {
			return nil, errNoLender
		}
		return nil, nil
	}
	if !w.lent {
		w.lent = true
		p.mu.Unlock()
		if err := w.pauseToLend(); err != nil {
			w.end(fmt.Errorf("%w: leaving IDLE to lend the connection: %w", backend.ErrUnavailable, err))
			p.closeLent(w)
			if b == borrowOnly {
				return nil, errNoLender
			}
			return nil, nil
		}
		p.mu.Lock()
		p.lendCount++
		p.mu.Unlock()
		return w.c, nil
	}
	wt := &waiter{key: key, c: make(chan *conn, 1)}
	p.waiting = append(p.waiting, wt)
	p.mu.Unlock()
	var timeout <-chan time.Time
	if b == borrowFirst {
		t := time.NewTimer(p.s.opts.LendWait)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case c := <-wt.c:
		return p.handedOver(c, b)
	case <-timeout:
	case <-ctx.Done():
	}
	p.mu.Lock()
	i := slices.Index(p.waiting, wt)
	if i >= 0 {
		p.waiting = slices.Delete(p.waiting, i, i+1)
	}
	p.mu.Unlock()
	if i < 0 {
		// Handed a connection just now, or about to be: takeBack
		// dequeues a waiter before its round trips.
		if ctx.Err() == nil {
			return p.handedOver(<-wt.c, b)
		}
		go func() {
			if c := <-wt.c; c != nil {
				p.put(c, true)
			}
		}()
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%w: waiting for a connection: %w", backend.ErrUnavailable, ctx.Err())
	}
	return nil, nil
}

// handedOver is what a waiter does with what it was handed: c, or on
// nil (the lender ended) a new connection.
func (p *userPool) handedOver(c *conn, b borrowing) (*conn, error) {
	if c == nil && b == borrowOnly {
		return nil, errNoLender
	}
	if c != nil && c.watch != nil {
		p.mu.Lock()
		p.lendCount++
		p.mu.Unlock()
	}
	return c, nil
}

// release takes back a lent connection (see put) and frees its slot.
func (p *userPool) release(c *conn, reuse bool) {
	p.put(c, reuse)
	<-p.slots
}

// put takes back a lent connection, keeping it for reuse if reuse is set
// and it is healthy and logged in with the pool's current password: it
// goes to the first operation waiting for one like it, else back to its
// watch if it is the lender's, else to the idle connections unless the
// lender's makes it redundant.
func (p *userPool) put(c *conn, reuse bool) {
	p.mu.Lock()
	w := c.watch
	healthy := reuse && !p.closed && !c.isClosed() && (w == nil || !w.gone)
	if healthy {
		if wt := p.popWaiter(c.key); wt != nil {
			p.mu.Unlock()
			wt.c <- c
			return
		}
	}
	if w != nil {
		gone := w.gone
		p.mu.Unlock()
		switch {
		case gone:
			p.closeLent(w)
		case !healthy:
			w.end(fmt.Errorf("%w: the connection failed while lent", backend.ErrUnavailable))
			p.closeLent(w)
		default:
			go w.takeBack()
		}
		return
	}
	redundant := p.lender != nil && p.lender.c.key == c.key
	if healthy && c.key == p.key && !redundant {
		c.lastUsed = time.Now()
		p.idle = append(p.idle, c)
	} else {
		p.open--
		c.close()
	}
	p.mu.Unlock()
}

// takeBack makes the lender's connection watch again (watch.resume) and
// lends it on if an operation asked for it meanwhile; one that asked
// before the round trips gets it at once.
func (w *watch) takeBack() {
	p := w.pool
	p.mu.Lock()
	if wt := p.nextWaiter(w); wt != nil {
		p.mu.Unlock()
		wt.c <- w.c
		return
	}
	p.mu.Unlock()
	err := w.resume()
	p.mu.Lock()
	if err != nil || w.gone {
		p.mu.Unlock()
		if err != nil {
			w.end(fmt.Errorf("%w: watching again after a lend: %w", backend.ErrUnavailable, err))
		}
		p.closeLent(w)
		return
	}
	wt := p.nextWaiter(w)
	if wt == nil {
		w.lent = false
		p.mu.Unlock()
		return
	}
	p.mu.Unlock()
	if err := w.pauseToLend(); err != nil {
		w.end(fmt.Errorf("%w: leaving IDLE to lend the connection: %w", backend.ErrUnavailable, err))
		p.closeLent(w)
		wt.c <- nil
		return
	}
	wt.c <- w.c
}

// nextWaiter dequeues the first operation waiting for the connection of
// w, which has not ended; nil if none. p.mu is held.
func (p *userPool) nextWaiter(w *watch) *waiter {
	if w.gone {
		return nil
	}
	return p.popWaiter(w.c.key)
}

// popWaiter dequeues the first operation waiting for a connection logged
// in with key; nil if none. p.mu is held.
func (p *userPool) popWaiter(key [32]byte) *waiter {
	i := slices.IndexFunc(p.waiting, func(wt *waiter) bool { return wt.key == key })
	if i < 0 {
		return nil
	}
	wt := p.waiting[i]
	p.waiting = slices.Delete(p.waiting, i, i+1)
	return wt
}

// reapIdle closes idle connections last used before cutoff.
func (p *userPool) reapIdle(cutoff time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	kept := p.idle[:0]
	for _, c := range p.idle {
		if c.lastUsed.Before(cutoff) || c.isClosed() {
			c.close()
			p.open--
			continue
		}
		kept = append(kept, c)
	}
	clear(p.idle[len(kept):])
	p.idle = kept
}

// unused reports whether the pool has no connections, no sessions and
// no watches.
func (p *userPool) unused() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open == 0 && p.refs == 0 && len(p.watching) == 0
}

func (p *userPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, c := range p.idle {
		c.close()
		p.open--
	}
	p.idle = nil
	for w := range p.watching {
		w.c.close()
	}
}

// watch registers w so that Store.Close ends it; it reports false if the
// store is already closed.
func (p *userPool) watch(w *watch) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.watching == nil {
		p.watching = make(map[*watch]bool)
	}
	p.watching[w] = true
	return true
}

// offer makes w the pool's lender unless it has one. The idle
// connections it makes redundant are closed.
func (p *userPool) offer(w *watch) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lender != nil || w.gone || p.s.opts.LendWait < 0 {
		return
	}
	p.lender, w.lender = w, true
	p.idle = slices.DeleteFunc(p.idle, func(c *conn) bool {
		if c.key != w.c.key {
			return false
		}
		c.close()
		p.open--
		return true
	})
}

// lends reports whether w is, or was until it ended, the pool's lender:
// its connection is then only ever used as a borrowed one.
func (p *userPool) lends(w *watch) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return w.lender
}

// closeLent closes the connection of the ended watch w, which was lent,
// and forgets w.
func (p *userPool) closeLent(w *watch) {
	w.c.close()
	p.mu.Lock()
	delete(p.watching, w)
	p.mu.Unlock()
}

// unwatch forgets the ended w. If it was the lender, the operations
// waiting for its connection are told to go elsewhere. It reports whether
// the connection is lent (then whoever has it closes it).
func (p *userPool) unwatch(w *watch) (lent bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !w.lent {
		// A lent one stays, so that Store.Close reaches its connection
		// until whoever has it closes it (closeLent).
		delete(p.watching, w)
	}
	w.gone = true
	if p.lender == w {
		p.lender = nil
		for _, wt := range p.waiting {
			wt.c <- nil
		}
		p.waiting = nil
	}
	return w.lent
}

func (p *userPool) stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := PoolStats{Open: p.open, Idle: len(p.idle), MaxOpen: p.maxOpen, Dials: p.dials,
		Watching: len(p.watching), Lends: p.lendCount, Waiting: len(p.waiting)}
	if p.lender != nil && p.lender.lent {
		st.Lent = 1
	}
	return st
}

// conn is one logged-in IMAP connection.
type conn struct {
	client   *imapclient.Client
	key      [32]byte // password it logged in with
	caps     imap.CapSet
	lastUsed time.Time
	// mutated is set by an operation just before it sends a command that
	// changes the mailbox; until then a broken connection can be replaced
	// and the operation retried without doing anything twice.
	mutated bool
	// selected is the folder the connection has selected, as it was
	// when selected (see examineFolder); zero when none.
	selected selection
	// watch is the Watch the connection belongs to; nil for a pooled
	// one.
	watch *watch
}

// selection names a selected folder: its name and UIDVALIDITY.
type selection struct {
	name string
	uv   uint32
}

func (c *conn) isClosed() bool {
	select {
	case <-c.client.Closed():
		return true
	default:
		return false
	}
}

func (c *conn) close() { c.client.Close() }

func (c *conn) has(cap imap.Cap) bool { return c.caps.Has(cap) }

// condStore reports whether the server offers CONDSTORE (RFC 7162).
func (c *conn) condStore() bool { return c.caps.Has(imap.CapCondStore) }

// dial connects, logs in with password, and reads the capabilities.
// Errors wrap backend.ErrAuthFailed (the server said NO to LOGIN) or
// backend.ErrUnavailable. handler, if not nil, receives unilateral data;
// it runs in the client's reader goroutine and must not call the client.
func (p *userPool) dial(ctx context.Context, key [32]byte, password string, handler *imapclient.UnilateralDataHandler) (*conn, error) {
	o := &p.s.opts
	ctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	d := net.Dialer{}
	nc, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("%w: connecting to %s: %w", backend.ErrUnavailable, o.Addr, err)
	}
	if o.Security != SecurityStartTLS {
		nc = newReadAheadConn(nc)
	}
	// Until login is done, the dial timeout or the caller's cancellation
	// aborts the exchange by closing the socket.
	stop := context.AfterFunc(ctx, func() { nc.Close() })

	copts := &imapclient.Options{TLSConfig: p.s.tlsConfig(), UnilateralDataHandler: handler}
	if p.s.debug != nil {
		copts.DebugWriter = p.s.debug
	}
	var client *imapclient.Client
	switch o.Security {
	case SecurityTLS:
		client = imapclient.New(tls.Client(nc, copts.TLSConfig), copts)
	case SecurityStartTLS:
		client, err = imapclient.NewStartTLS(nc, copts)
		if err != nil {
			stop()
			nc.Close()
			return nil, fmt.Errorf("%w: STARTTLS with %s: %w", backend.ErrUnavailable, o.Addr, err)
		}
	default:
		client = imapclient.New(nc, copts)
	}
	fail := func(err error) (*conn, error) {
		stop()
		client.Close()
		return nil, err
	}
	if err := client.WaitGreeting(); err != nil {
		return fail(fmt.Errorf("%w: greeting from %s: %w", backend.ErrUnavailable, o.Addr, err))
	}
	if err := client.Login(p.user, password).Wait(); err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo {
			p.s.log.Info("imap login refused", "user", p.user, "server", ie.Text)
			return fail(fmt.Errorf("%w: %w", backend.ErrAuthFailed, err))
		}
		return fail(fmt.Errorf("%w: LOGIN at %s: %w", backend.ErrUnavailable, o.Addr, err))
	}
	caps := client.Caps()
	if !stop() {
		// The context ended while we were logging in; the socket is gone.
		client.Close()
		return nil, fmt.Errorf("%w: logging in at %s: %w", backend.ErrUnavailable, o.Addr, ctx.Err())
	}
	if caps == nil {
		client.Close()
		return nil, fmt.Errorf("%w: CAPABILITY at %s failed", backend.ErrUnavailable, o.Addr)
	}
	p.s.log.Debug("imap connection open", "user", p.user, "server", o.Addr)
	return &conn{client: client, key: key, caps: caps, lastUsed: time.Now()}, nil
}

func (s *Store) tlsConfig() *tls.Config {
	cfg := &tls.Config{}
	if s.opts.TLSConfig != nil {
		cfg = s.opts.TLSConfig.Clone()
	}
	if cfg.ServerName == "" {
		if host, _, err := net.SplitHostPort(s.opts.Addr); err == nil {
			cfg.ServerName = host
		}
	}
	return cfg
}

// errServer marks an answer the server gave that the operation cannot use
// (a missing extension, a malformed response code): the server is fine
// and so is the connection.
var errServer = errors.New("imapstore: unusable answer from the IMAP server")

// semantic are the errors that say something about the request, not the
// connection.
var semantic = []error{
	errServer,
	backend.ErrFolderNotFound, backend.ErrFolderExists, backend.ErrParentNotFound,
	backend.ErrSpecialFolder, backend.ErrInvalidName, backend.ErrUIDValidityChanged,
	backend.ErrMessageNotFound, backend.ErrDestNotFound, backend.ErrSameFolder,
	backend.ErrInvalidSection,
}

// broken reports whether err (from an operation on c) left c unusable.
// go-imap reports I/O failures without wrapping the cause and may return
// them a moment before the client marks itself closed, so anything but a
// server response (NO/BAD, *imap.Error) or an error about the request
// itself counts as broken.
func (c *conn) broken(err error) bool {
	if c.isClosed() {
		return true
	}
	if err == nil || isNo(err) {
		return false
	}
	for _, e := range semantic {
		if errors.Is(err, e) {
			return false
		}
	}
	return true
}

// readAheadSize is how much a connection reads from the socket at once.
// go-imap reads through a 4 KiB buffer, so a Sync window's FETCH of a few
// megabytes took one read system call per 4 KiB; reading up to 64 KiB
// of what the server already sent takes a sixth of them (measured with
// strace on the initial-sync benchmark: 1,380 → 200 reads per sync).
const readAheadSize = 64 << 10

// readAheadConn is a connection whose reads go through a buffer of
// readAheadSize, and which sets a read deadline on the socket only when
// a read reaches the socket: go-imap sets one before and after every
// message of a FETCH, and each is a timer change in the runtime's
// poller (2% of the gateway's CPU in an initial sync), while most
// messages are read from the buffer. A deadline set while a read waits
// on the socket is set at once, as on any connection.
//
// It is not used with STARTTLS, where the buffer could hold the
// server's first TLS bytes before the client's TLS layer takes over.
type readAheadConn struct {
	net.Conn
	r *bufio.Reader

	mu       sync.Mutex
	deadline time.Time // the read deadline last asked for
	pending  bool      // deadline is not yet set on the socket
	reading  bool      // a read waits on the socket
}

func newReadAheadConn(c net.Conn) net.Conn {
	rc := &readAheadConn{Conn: c}
	rc.r = bufio.NewReaderSize(socketReader{rc}, readAheadSize)
	return rc
}

// Read reads from the buffer, filling it from the socket when empty.
func (c *readAheadConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// SetReadDeadline records t for the next read from the socket.
func (c *readAheadConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	if c.reading {
		c.pending = false
		return c.Conn.SetReadDeadline(t)
	}
	c.pending = true
	return nil
}

// SetDeadline sets the write deadline at once and the read deadline as
// SetReadDeadline does.
func (c *readAheadConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// socketReader reads from a readAheadConn's socket, setting the read
// deadline first if one is pending.
type socketReader struct{ c *readAheadConn }

func (s socketReader) Read(p []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	if c.pending {
		c.pending = false
		if err := c.Conn.SetReadDeadline(c.deadline); err != nil {
			c.mu.Unlock()
			return 0, err
		}
	}
	c.reading = true
	c.mu.Unlock()
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.reading = false
	c.mu.Unlock()
	return n, err
}
