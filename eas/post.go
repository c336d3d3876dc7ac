package eas

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/wbxml"
)

// Request is one authenticated, parsed EAS command as a Handler sees it.
type Request struct {
	// Command is the command name, e.g. "FolderSync".
	Command string
	// User is the authenticated login (DOMAIN\ removed), as the
	// Authenticator accepted it. Device records are keyed by it.
	User string
	// DeviceID (lower-cased), DeviceType and Version come from the query
	// (see Query).
	DeviceID   string
	DeviceType string
	Version    string
	// PolicyKey is the key the client sent; 0 when none.
	PolicyKey uint32
	// Params, SaveInSent and AcceptMultiPart are the query's parameters.
	Params          Params
	SaveInSent      bool
	AcceptMultiPart bool
	// Query is the query as parsed, including its own User value.
	Query *Query

	// UserAgent and RemoteAddr identify the client; Header holds all
	// request headers (Authorization removed), for the handler: a parked
	// request's Later no longer has them (park.go).
	UserAgent  string
	RemoteAddr string
	Header     http.Header
	// ContentType is the request's media type without parameters.
	ContentType string
	// Raw is a body that is not WBXML (message/rfc822 for 12.x SendMail);
	// nil otherwise.
	Raw []byte

	// Device is the device's record after this request registered it;
	// nil when the server has no device store, and in a parked request's
	// Later (the gate's admit reads it again).
	Device *devices.Device

	authKey [32]byte                 // auth cache key, to forget it if the backend refuses later
	mail    *mailbox                 // the mail session behind Mailbox; holds the password
	rc      *http.ResponseController // nil outside servePost (handlers called directly in tests) and once parked
	// parked is set once the front door holds the connection itself
	// (park.go): it sets the answer's write deadline when it writes it.
	parked bool
}

// ExtendWriteDeadline lets the answer to this request be written up to d
// from now, beyond the server-wide WriteTimeout (http.Server), for
// commands that wait on purpose: Ping and hanging Sync hold the request
// for their heartbeat (up to an hour). It fails when the connection
// cannot change its deadline (http.ErrNotSupported) or the request is
// not served over HTTP. A parked request has no deadline until its answer
// is written, so there is nothing to extend.
func (r *Request) ExtendWriteDeadline(d time.Duration) error {
	switch {
	case r.parked:
		return nil
	case r.rc != nil:
		return r.rc.SetWriteDeadline(time.Now().Add(d))
	}
	return http.ErrNotSupported
}

// VersionNumber returns the protocol version times ten: 141 for "14.1".
func (r *Request) VersionNumber() int { return versionNumber(r.Version) }

// Media types of EAS bodies (MS-ASHTTP 2.2.1.1.2.1, MS-ASCMD 2.2.2.9.1.1).
const (
	ContentTypeWBXML     = "application/vnd.ms-sync.wbxml"
	ContentTypeMultipart = "application/vnd.ms-sync.multipart"
	contentTypeRFC822    = "message/rfc822"
)

// errAuthMissing and errAuthDenied are the causes of a 401.
var (
	errAuthMissing = errors.New("no usable HTTP Basic credentials")
	errAuthDenied  = errors.New("wrong user or password")
)

// authenticate checks the request's Basic credentials and returns the
// login. Wrong passwords are counted per user and address, and later
// attempts are slowed down (see Throttle); the wait does not hold a lock
// and ends when the client goes away. Errors wrap errAuthMissing,
// errAuthDenied, backend.ErrUnavailable, context.Canceled or a backend
// error.
func (s *Server) authenticate(r *http.Request, rec *logRecord) (credentials, error) {
	cred, ok := basicAuth(r)
	if !ok {
		return credentials{}, errAuthMissing
	}
	rec.user = cred.user
	ctx := r.Context()
	key := s.cache.key(cred.user, cred.password)
	now := s.cfg.Now()
	if s.cache.ok(key, now) {
		return cred, nil
	}
	fkey := failureKey(cred.user, r.RemoteAddr)
	n := s.failures.count(ctx, fkey, now)
	if d := s.failures.throttle.Delay(n); d > 0 {
		s.metrics.authDelays.Inc()
		if err := s.cfg.Sleep(ctx, d); err != nil {
			return credentials{}, fmt.Errorf("waiting %v after %d failed logins: %w", d, n, err)
		}
	}
	err := s.cfg.Authenticator.Authenticate(ctx, cred.user, cred.password)
	switch {
	case err == nil:
		s.cache.put(key, s.cfg.Now())
		if n > 0 {
			s.failures.reset(ctx, fkey)
		}
		return cred, nil
	case errors.Is(err, backend.ErrAuthFailed):
		s.metrics.authFailures.Inc()
		s.failures.fail(ctx, fkey, s.cfg.Now())
		return credentials{}, fmt.Errorf("%w: %w", errAuthDenied, err)
	}
	return credentials{}, err
}

// writeAuthError answers a failed authentication: 401 with a challenge and
// no body for missing or wrong credentials, the usual error response
// otherwise (503/111 when the mail server is down).
func (s *Server) writeAuthError(w http.ResponseWriter, r *http.Request, err error, version string, cmd command, rec *logRecord) {
	if errors.Is(err, errAuthMissing) || errors.Is(err, errAuthDenied) {
		rec.code, rec.cause = http.StatusUnauthorized, err
		h := w.Header()
		s.commonHeaders(h)
		h.Set("WWW-Authenticate", `Basic realm="easgate"`)
		h.Set("Content-Length", "0")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	s.writeError(w, r, version, cmd, err, rec)
}

// servePost runs one EAS command: authenticate, check the query, register
// the device, pass the gate, read and check the body, run the handler and
// write its answer in one go. A command that waits (Response.Later) is
// parked when it can be (park.go): its answer, log line and metrics come
// from the parked request's own goroutine.
func (s *Server) servePost(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Now()
	s.metrics.inFlight.Inc()
	rec := &logRecord{remote: r.RemoteAddr}
	parked := false
	defer func() {
		if !parked {
			s.finish(rec, start)
			s.metrics.inFlight.Dec()
		}
	}()

	q, qerr := ParseQuery(r.URL.RawQuery, r.Header)
	cmd, known := commandByName(q.Command)
	rec.command, rec.version, rec.device, rec.deviceType = q.Command, q.Version, q.DeviceID, q.DeviceType
	if known {
		rec.command = cmd.Name
	}

	cred, err := s.authenticate(r, rec)
	if err != nil {
		if r.Context().Err() != nil {
			rec.code, rec.cause = 499, errClientGone
			return
		}
		s.writeAuthError(w, r, err, q.Version, cmd, rec)
		return
	}
	req := &Request{
		Command: cmd.Name, User: cred.user,
		DeviceID: q.DeviceID, DeviceType: q.DeviceType, Version: q.Version,
		PolicyKey: q.PolicyKey, Params: q.Params,
		SaveInSent: q.SaveInSent, AcceptMultiPart: q.AcceptMultiPart, Query: q,
		UserAgent: r.UserAgent(), RemoteAddr: r.RemoteAddr, Header: r.Header.Clone(),
		authKey: s.cache.key(cred.user, cred.password),
		mail:    s.newMailbox(cred),
		rc:      http.NewResponseController(w),
	}
	defer func() {
		if !parked {
			s.closeMailbox(req)
		}
	}()
	req.Header.Del("Authorization")

	resp, err := s.run(w, r, req, q, qerr, cmd, known)
	if err == nil && resp.Later != nil {
		if parked = s.park(w, r, req, cmd, resp.Later, rec, start); parked {
			return
		}
		type result struct {
			resp Response
			err  error
		}
		ch := make(chan result, 1)
		resp.Later(r.Context(), func(resp Response, err error) { ch <- result{resp, err} })
		res := <-ch
		resp, err = res.resp, res.err
	}
	s.answer(w, r, req, cmd, resp, err, rec)
}

// answer writes a handler's result: its Response, or the error response
// for its error.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, req *Request, cmd command, resp Response, err error, rec *logRecord) {
	if err == nil && resp.Later != nil {
		err = errors.New("eas: Later answered with a Response with Later")
	}
	if err != nil {
		if errors.Is(err, backend.ErrAuthFailed) {
			s.cache.forget(req.authKey)
		}
		s.writeError(w, r, req.Version, cmd, err, rec)
		return
	}
	if err := s.writeResponse(w, r, cmd, resp, rec); err != nil {
		s.writeError(w, r, req.Version, cmd, err, rec)
	}
}

// run checks the request and calls the handler. Every refusal is a
// *StatusError (see errors.go for how each looks per version).
func (s *Server) run(w http.ResponseWriter, r *http.Request, req *Request, q *Query, qerr error, cmd command, known bool) (Response, error) {
	ctx := r.Context()
	var qe *QueryError
	switch {
	case qerr != nil && errors.As(qerr, &qe) && qe.Field == "MS-ASProtocolVersion":
		return Response{}, errBadRequest(0, qerr)
	case q.Version != "" && !slices.Contains(s.versions, q.Version):
		return Response{}, errBadRequest(StatusVersionNotSupported, fmt.Errorf("protocol version %q not offered", q.Version))
	case !known:
		return Response{}, errBadRequest(0, fmt.Errorf("unknown command %q", q.Command))
	case qerr != nil && errors.As(qerr, &qe) && qe.Field == "DeviceId":
		return Response{}, errBadRequest(StatusDeviceIDMissingOrInvalid, qerr)
	case qerr != nil && errors.As(qerr, &qe) && qe.Field == "DeviceType":
		return Response{}, errBadRequest(StatusDeviceTypeMissingOrInval, qerr)
	case qerr != nil:
		return Response{}, errBadRequest(0, qerr)
	}
	h, ok := s.handlers[cmd.Name]
	if !ok {
		return Response{}, &StatusError{HTTP: http.StatusNotImplemented, Status: StatusCommandNotSupported,
			Cause: fmt.Errorf("command %s not implemented", cmd.Name)}
	}
	if q.User != "" && !sameUser(q.User, req.User) {
		// The query names another mailbox than the credentials: a
		// misconfigured client or an attempt to reach someone else's
		// mail. 403 "not enabled for this user" (MS-ASHTTP 2.2.2.1.1).
		return Response{}, &StatusError{HTTP: http.StatusForbidden, Status: StatusAccessDenied,
			Cause: fmt.Errorf("query User %q is not the authenticated user %q", q.User, req.User)}
	}
	if r.ContentLength > s.cfg.MaxBodyBytes {
		return Response{}, &StatusError{HTTP: http.StatusRequestEntityTooLarge,
			Cause: fmt.Errorf("body of %d bytes exceeds the limit of %d", r.ContentLength, s.cfg.MaxBodyBytes)}
	}
	if err := s.admit(ctx, req); err != nil {
		return Response{}, err
	}
	body, err := s.readBody(w, r, req, cmd)
	if err != nil {
		return Response{}, err
	}
	return h(ctx, req, body)
}

// readBody reads the request body, at most MaxBodyBytes after gzip
// decoding, and decodes WBXML, checking the command's root element. A body
// of another media type (message/rfc822) is left in req.Raw.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, req *Request, cmd command) (*wbxml.Element, error) {
	limit := s.cfg.MaxBodyBytes
	var src io.Reader = http.MaxBytesReader(w, r.Body, limit)
	if enc := strings.TrimSpace(r.Header.Get("Content-Encoding")); enc != "" && !strings.EqualFold(enc, "identity") {
		if !strings.EqualFold(enc, "gzip") {
			return nil, &StatusError{HTTP: http.StatusUnsupportedMediaType, Status: StatusInvalidContent,
				Cause: fmt.Errorf("unsupported Content-Encoding %q", enc)}
		}
		zr, err := gzip.NewReader(src)
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, bodyReadError(err, limit)
		}
		if zr != nil {
			defer zr.Close()
			src = zr
		}
	}
	data, err := io.ReadAll(io.LimitReader(src, limit+1))
	if err != nil {
		return nil, bodyReadError(err, limit)
	}
	if int64(len(data)) > limit {
		return nil, &StatusError{HTTP: http.StatusRequestEntityTooLarge,
			Cause: fmt.Errorf("decoded body exceeds the limit of %d bytes", limit)}
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	req.ContentType = ct
	if len(data) == 0 {
		return nil, nil
	}
	if cmd.Root == 0 || ct == contentTypeRFC822 {
		req.Raw = data
		return nil, nil
	}
	doc, err := wbxml.Parse(bytes.NewReader(data), wbxml.DefaultLimits)
	if err != nil {
		return nil, errBadRequest(StatusInvalidWBXML, fmt.Errorf("%s body: %w", cmd.Name, err))
	}
	if doc.Tag != cmd.Root {
		return nil, errBadRequest(StatusInvalidXML, fmt.Errorf("%s body has root element %v", cmd.Name, doc.Tag))
	}
	return doc, nil
}

// bodyReadError classifies an error from reading the body.
func bodyReadError(err error, limit int64) error {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return &StatusError{HTTP: http.StatusRequestEntityTooLarge,
			Cause: fmt.Errorf("body exceeds the limit of %d bytes", limit)}
	case errors.Is(err, gzip.ErrHeader), errors.Is(err, gzip.ErrChecksum), errors.Is(err, io.ErrUnexpectedEOF):
		return errBadRequest(StatusInvalidContent, fmt.Errorf("reading body: %w", err))
	}
	// The connection failed or the client went away.
	return fmt.Errorf("reading body: %w", err)
}

// statusElement builds <Root><Status>n</Status></Root>, the 14.0+ error
// body of a command (MS-ASCMD 2.2.2).
func statusElement(cmd command, status int) *wbxml.Element {
	return wbxml.E(cmd.Root, wbxml.T(cmd.Status, strconv.Itoa(status)))
}
