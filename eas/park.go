package eas

// Parking. A Ping or hanging Sync waits up to an hour for news. Served
// the usual way, every waiting request keeps net/http's connection
// goroutine (stopped deep inside the router, the front door and the
// command), the connection's background reader goroutine and its
// buffers: about 50 KB per phone, most of the gateway's memory when
// thousands of phones wait. A command that waits returns Response.Later
// instead of blocking; when the server's listener was wrapped by
// Server.Listener and the request came over HTTP/1.x, the front door
// takes the connection over (http.Hijacker), starts Later and lets
// net/http's goroutine end. Later holds no goroutine while it waits (the
// user's watcher, a timer and the push broker call it back); when it
// answers, the front door writes the answer itself (HTTP/1.1 with
// Content-Length, as every answer of the front door has one) and hands
// the connection back to net/http through the listener, so the phone's
// next request on it is served as usual. A parked Ping is the
// connection, its request and a few small objects. Otherwise (HTTP/2,
// tests on httptest servers) the handler waits for Later's answer.
//
// What parking gives up: net/http notices a client that hangs up while
// its request waits (the request's context ends); a parked connection
// has nobody reading it, so a phone that left is noticed when its
// answer is written — at the heartbeat, or at once when the phone comes
// back with a newer Ping, which supersedes the parked one. And a
// connection handed back is a new one to net/http: the client then has
// the server's ReadHeaderTimeout, not its IdleTimeout, to send its next
// request on it. Phones send theirs at once (a Sync, or the next Ping);
// one that waits longer finds the connection closed, as after any idle
// timeout, and opens another.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// Listener wraps the listener the server's http.Server accepts
// connections from, so that parked requests (see Response.Later) can
// hand their connections back to it after their answer. The server parks
// only when it is served through the returned listener, over HTTP/1.x;
// a TLS listener must be inside (tls.NewListener(ln, …) passed here, the
// http.Server started with Serve, not ServeTLS), so that handed-back
// connections are the *tls.Conn net/http expects. Call it once, before
// serving.
func (s *Server) Listener(ln net.Listener) net.Listener {
	pl := &parkListener{
		Listener: ln,
		back:     make(chan net.Conn),
		accepted: make(chan acceptResult),
		done:     make(chan struct{}),
	}
	s.parking.mu.Lock()
	s.parking.ln = pl
	s.parking.mu.Unlock()
	return pl
}

// parkListener is the listener of Server.Listener: Accept returns the
// connections of the listener it wraps and the ones parked requests hand
// back.
type parkListener struct {
	net.Listener
	back      chan net.Conn
	accepted  chan acceptResult
	start     sync.Once
	done      chan struct{}
	closeOnce sync.Once
}

type acceptResult struct {
	conn net.Conn
	err  error
}

// Accept implements net.Listener.
func (l *parkListener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.back:
		return c, nil
	case r := <-l.accepted:
		return r.conn, r.err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// acceptLoop accepts from the wrapped listener until it is closed,
// passing on errors too (http.Server backs off after temporary ones).
func (l *parkListener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		select {
		case l.accepted <- acceptResult{c, err}:
		case <-l.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Close implements net.Listener.
func (l *parkListener) Close() error {
	err := net.ErrClosed
	l.closeOnce.Do(func() {
		close(l.done)
		err = l.Listener.Close()
	})
	return err
}

// closed reports whether Close was called.
func (l *parkListener) closed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// handBack gives a connection whose answer was written back to the
// http.Server, which reads the client's next request from it. It reports
// false when the listener is closed; the caller closes the connection.
func (l *parkListener) handBack(c net.Conn) bool {
	select {
	case l.back <- c:
		return true
	case <-l.done:
		return false
	}
}

// parking is the server's state of parked requests.
type parking struct {
	mu       sync.Mutex
	ln       *parkListener // nil: the server does not park
	draining bool          // EndWaits was called: no new parking
	wg       sync.WaitGroup
}

// parkedRequest is what a parked request keeps while it waits: the
// connection (no buffers, no goroutine of net/http's), the request and
// the pieces of the HTTP request its answer needs.
type parkedRequest struct {
	conn      net.Conn
	ln        *parkListener // where conn goes back after the answer
	keepAlive bool          // the client may send another request on conn
	header    http.Header   // the request headers the answer depends on
	req       *Request
	cmd       command
	rec       *logRecord
	start     time.Time
}

// park takes over the request's connection and starts later, whose
// answer is written on the connection. It reports false when the request
// cannot be parked (the server does not park, the connection is not
// HTTP/1.x, the server is shutting down); the caller then runs later
// itself.
func (s *Server) park(w http.ResponseWriter, r *http.Request, req *Request, cmd command, later func(context.Context, func(Response, error)), rec *logRecord, start time.Time) bool {
	if r.ProtoMajor != 1 {
		return false
	}
	p := &s.parking
	p.mu.Lock()
	if p.ln == nil || p.draining || p.ln.closed() {
		p.mu.Unlock()
		return false
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.mu.Unlock()
		return false
	}
	pr := &parkedRequest{
		conn: conn,
		ln:   p.ln,
		// Bytes already read past the request (a pipelined request)
		// cannot be handed back with the connection: it closes after
		// the answer instead.
		keepAlive: r.ProtoAtLeast(1, 1) && !r.Close && brw.Reader.Buffered() == 0,
		header:    http.Header{},
		req:       req,
		cmd:       cmd,
		rec:       rec,
		start:     start,
	}
	if v := r.Header.Values("Accept-Encoding"); len(v) > 0 {
		pr.header["Accept-Encoding"] = v
	}
	req.rc, req.parked = nil, true
	// Thousands of parked requests: keep only what the rest of the
	// command reads (see Request.Header and Device).
	req.Header, req.Device = nil, nil
	// Added while not draining, under the lock: never after AwaitParked's
	// Wait began. Later runs without the lock, as it may answer at once.
	p.wg.Add(1)
	p.mu.Unlock()
	s.metrics.parked.Inc()
	// The parked request's context: the client is not watched (nobody
	// reads the connection) and the wait ends by itself at the
	// heartbeat or when something ends it (EndWaits at shutdown).
	later(context.Background(), func(resp Response, err error) { s.answerParked(pr, resp, err) })
	return true
}

// answerParked writes a parked request's answer on its connection, then
// hands the connection back to the http.Server (or closes it).
func (s *Server) answerParked(pr *parkedRequest, resp Response, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.logPanic(pr.req, v)
			pr.conn.Close()
		}
	}()
	defer s.parking.wg.Done()
	defer s.metrics.parked.Dec()
	defer s.metrics.inFlight.Dec()
	defer func() { s.finish(pr.rec, pr.start) }()
	defer s.closeMailbox(pr.req)

	// The answer and the log line are those of a request served by
	// net/http; the stand-in request carries what they read of it.
	hr := &http.Request{Method: http.MethodPost, Header: pr.header, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
	s.parking.mu.Lock()
	keep := pr.keepAlive && !s.parking.draining
	s.parking.mu.Unlock()
	cw := newConnWriter(pr.conn, !keep)
	pr.conn.SetWriteDeadline(time.Now().Add(writeSlack))
	s.answer(cw, hr, pr.req, pr.cmd, resp, err, pr.rec)
	if err := cw.flush(); err != nil {
		pr.rec.code, pr.rec.cause = 499, errClientGone
		pr.conn.Close()
		return
	}
	pr.conn.SetWriteDeadline(time.Time{})
	if !keep || cw.close || !pr.ln.handBack(pr.conn) {
		pr.conn.Close()
	}
}

// EndWaits answers every Ping and hanging Sync waiting in this process as
// if its heartbeat had ended (nothing changed that it knows of), and every
// one that begins afterwards at once; requests are no longer parked and
// parked ones close their connections after the answer. The gateway calls
// it when it shuts down, before waiting for requests in flight
// (AwaitParked for the parked ones), so that phones are not cut off but
// told to come back (MS-ASCMD 2.2.3.177.10, Status 1).
func (s *Server) EndWaits() {
	s.parking.mu.Lock()
	s.parking.draining = true
	s.parking.mu.Unlock()
	s.broker.Shutdown()
}

// AwaitParked waits until every parked request was answered, or ctx ends.
// Call it after EndWaits.
func (s *Server) AwaitParked(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.parking.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connWriter is the http.ResponseWriter of a parked request's answer: an
// HTTP/1.1 response written to the connection. The front door's answers
// all carry Content-Length; one without would be delimited by closing
// the connection.
type connWriter struct {
	bw     *bufio.Writer
	header http.Header
	code   int   // 0 until WriteHeader
	length int64 // the Content-Length sent; -1 when none
	n      int64 // body bytes written
	close  bool
	err    error
}

func newConnWriter(c net.Conn, close bool) *connWriter {
	return &connWriter{bw: bufio.NewWriter(c), header: http.Header{}, close: close}
}

// Header implements http.ResponseWriter.
func (w *connWriter) Header() http.Header { return w.header }

// WriteHeader implements http.ResponseWriter: it writes the status line
// and the headers (RFC 9112 4, 5).
func (w *connWriter) WriteHeader(code int) {
	if w.code != 0 {
		return
	}
	w.code = code
	h := w.header
	w.length = -1
	if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
		w.length = n
	} else {
		w.close = true
	}
	if w.close {
		h.Set("Connection", "close")
	}
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	w.bw.WriteString("HTTP/1.1 " + strconv.Itoa(code) + " " + text + "\r\n")
	if err := h.Write(w.bw); err != nil {
		w.err = err
	}
	w.bw.WriteString("\r\n")
}

// Write implements http.ResponseWriter.
func (w *connWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	n, err := w.bw.Write(p)
	w.n += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

// flush sends what is buffered; an empty answer is a 200. A body shorter
// or longer than its Content-Length (a failed copy) leaves the
// connection unusable: close is then set.
func (w *connWriter) flush() error {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.length >= 0 && w.n != w.length {
		w.close = true
	}
	if w.err != nil {
		return w.err
	}
	return w.bw.Flush()
}

// recoverAnswer, deferred by code that must end in answer, answers with
// an error after a panic (logged). answer itself never panics outward:
// the front door's answers recover on their own (answerParked) or only
// send on a channel.
func (s *Server) recoverAnswer(req *Request, answer func(Response, error)) {
	if v := recover(); v != nil {
		s.logPanic(req, v)
		answer(Response{}, fmt.Errorf("eas: panic while waiting: %v", v))
	}
}

// logPanic logs a panic of a goroutine that serves a waiting request
// outside net/http's handler (which would have recovered it), with the
// stack: the process goes on serving everyone else.
func (s *Server) logPanic(req *Request, v any) {
	s.log.LogAttrs(context.Background(), slog.LevelError, "panic while serving a waiting request",
		slog.String("user", req.User), slog.String("device", req.DeviceID), slog.String("cmd", req.Command),
		slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
}
