// Package admin is easgate's administration API: a small JSON-over-HTTP
// interface, served on its own listener, through which an operator lists the
// phones that talk to the gateway, blocks or allows them, asks for a remote
// wipe (MS-ASPROV 3.1.5.2) and forgets a partnership.
//
// It exists apart from the EAS front door because its audience and its
// threat model differ: phones authenticate with their mail password on a
// public port, an administrator with one bearer token on a private one. The
// API works only on the devices.Store the gateway shares with the EAS
// handlers; the handlers act on what it writes at the device's next request
// (a blocked device gets 403 or Status 129, a wipe goes out in the next
// Provision).
//
// Every call except GET /healthz needs "Authorization: Bearer <token>",
// compared in constant time. Every mutating call writes one audit line to
// the log. docs/admin-api.md describes each endpoint with examples.
package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/easgate/easgate/devices"
)

// MinTokenLength is the shortest admin token New accepts. A token is a
// password that never has to be typed; anything shorter than this is more
// likely a placeholder than a secret.
const MinTokenLength = 16

// ErrNoToken reports that the API was configured without a usable token.
// The gateway refuses to open the admin listener in that case rather than
// serve an API anybody on the network could use.
var ErrNoToken = errors.New("admin: no admin token (set EASGATE_ADMIN_TOKEN)")

// ErrConfig reports an Options value New cannot work with.
var ErrConfig = errors.New("admin: bad configuration")

// Options configure an API.
type Options struct {
	// Store is the device registry the API reads and changes. Required.
	Store devices.Store
	// Token is the bearer token every call except /healthz must present.
	// Required, at least MinTokenLength bytes.
	Token string
	// Logger receives the audit lines and request errors; nil means
	// slog.Default().
	Logger *slog.Logger
	// Metrics, when not nil, is served at GET /metrics (behind the token),
	// e.g. promhttp.HandlerFor on the gateway's registry.
	Metrics http.Handler
	// Health, when not nil, is called by GET /healthz; an error makes it
	// answer 503. The gateway checks its device store with it.
	Health func(ctx context.Context) error
	// Now is the clock for WipeRequested; nil means time.Now.
	Now func() time.Time
	// Waits, when not nil, reaches a device's waiting request (a Ping or
	// hanging Sync held open, on this gateway instance or another): a
	// block, allow, wipe or delete ends it so that the phone comes back
	// and meets its fate at once, and the wake action is offered.
	Waits Notifier
}

// Notifier reaches a device's waiting request wherever it is held. The
// gateway implements it with eas/push; the admin API knows nothing of
// how.
type Notifier interface {
	// DeviceChanged ends the device's waiting request, if any, so that
	// it checks the device's access and wipe state again.
	DeviceChanged(ctx context.Context, user, device string) error
	// Wake ends the device's waiting request, if any, telling the phone
	// to sync the folders it waits on.
	Wake(ctx context.Context, user, device string) error
}

// API is the admin HTTP handler. It is safe for concurrent use.
type API struct {
	store   devices.Store
	token   [sha256.Size]byte
	log     *slog.Logger
	metrics http.Handler
	health  func(ctx context.Context) error
	now     func() time.Time
	waits   Notifier // nil: no waiting requests to reach
	router  chi.Router
}

// New returns the API for o. It fails with ErrNoToken when o.Token is empty
// or shorter than MinTokenLength, and with ErrConfig when o.Store is nil.
func New(o Options) (*API, error) {
	if o.Store == nil {
		return nil, fmt.Errorf("%w: no device store", ErrConfig)
	}
	if o.Token == "" {
		return nil, ErrNoToken
	}
	if len(o.Token) < MinTokenLength {
		return nil, fmt.Errorf("%w: the token is %d bytes, at least %d are needed", ErrNoToken, len(o.Token), MinTokenLength)
	}
	a := &API{
		store:   o.Store,
		token:   sha256.Sum256([]byte(o.Token)),
		log:     o.Logger,
		metrics: o.Metrics,
		health:  o.Health,
		now:     o.Now,
		waits:   o.Waits,
	}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.now == nil {
		a.now = time.Now
	}
	r := chi.NewRouter()
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint")
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method not allowed")
	})
	r.Get("/healthz", a.healthz)
	r.Group(func(r chi.Router) {
		r.Use(a.authenticate)
		if a.metrics != nil {
			r.Method(http.MethodGet, "/metrics", a.metrics)
		}
		r.Get("/api/v1/devices", a.listDevices)
		r.Get("/api/v1/devices/{user}/{device}", a.getDevice)
		r.Get("/api/v1/devices/{user}/{device}/sync", a.syncReport)
		r.Delete("/api/v1/devices/{user}/{device}", a.deleteDevice)
		r.Post("/api/v1/devices/{user}/{device}/{action}", a.deviceAction)
	})
	a.router = r
	return a, nil
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.router.ServeHTTP(w, r) }

// authenticate lets a request through only with the right bearer token.
// Both sides are hashed first so that the comparison takes the same time
// whatever the length of the presented token.
func (a *API) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r.Header.Get("Authorization"))
		if ok {
			sum := sha256.Sum256([]byte(tok))
			ok = subtle.ConstantTimeCompare(sum[:], a.token[:]) == 1
		}
		if !ok {
			a.log.Warn("admin: refused request without a valid token", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer realm="easgate-admin"`)
			writeError(w, http.StatusUnauthorized, "missing or wrong bearer token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer extracts the token of an "Authorization: Bearer <token>" header
// (RFC 6750 2.1; the scheme is case-insensitive).
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// healthz answers 200 {"status":"ok"} while the process serves and its
// health check passes, 503 {"status":"unavailable","error":…} otherwise. It
// needs no token so that load balancers and container runtimes can probe it;
// it reveals nothing but liveness.
func (a *API) healthz(w http.ResponseWriter, r *http.Request) {
	if a.health != nil {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		if err := a.health(ctx); err != nil {
			a.log.Warn("admin: health check failed", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "unavailable", "error": "device store unreachable"})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// DeviceList is the body of GET /api/v1/devices.
type DeviceList struct {
	Devices []*devices.Device `json:"devices"`
}

// DeviceDetail is the body of GET /api/v1/devices/{user}/{deviceId}: the
// device record plus the collections it holds sync state for ("" is the
// folder hierarchy).
type DeviceDetail struct {
	*devices.Device
	SyncCollections []string `json:"syncCollections"`
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request) {
	list, err := a.store.ListDevices(r.Context(), r.URL.Query().Get("user"))
	if err != nil {
		a.serverError(w, r, "list devices", err)
		return
	}
	if list == nil {
		list = []*devices.Device{}
	}
	writeJSON(w, http.StatusOK, DeviceList{Devices: list})
}

// deviceCollections loads the device the path names and the collections
// it has Sync states for. When it fails it has answered the request.
func (a *API) deviceCollections(w http.ResponseWriter, r *http.Request) (*devices.Device, []string, bool) {
	user, dev, ok := pathIDs(w, r)
	if !ok {
		return nil, nil, false
	}
	d, err := a.store.GetDevice(r.Context(), user, dev)
	if err != nil {
		a.storeError(w, r, "get device", err)
		return nil, nil, false
	}
	colls, err := a.store.SyncCollections(r.Context(), user, dev)
	if err != nil {
		a.serverError(w, r, "list sync collections", err)
		return nil, nil, false
	}
	return d, colls, true
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request) {
	d, colls, ok := a.deviceCollections(w, r)
	if !ok {
		return
	}
	if colls == nil {
		colls = []string{}
	}
	writeJSON(w, http.StatusOK, DeviceDetail{Device: d, SyncCollections: colls})
}

func (a *API) deleteDevice(w http.ResponseWriter, r *http.Request) {
	user, dev, ok := pathIDs(w, r)
	if !ok {
		return
	}
	err := a.store.DeleteDevice(r.Context(), user, dev)
	a.audit(r, "delete", user, dev, err)
	if err != nil {
		a.storeError(w, r, "delete device", err)
		return
	}
	a.deviceChanged(r, user, dev)
	w.WriteHeader(http.StatusNoContent)
}

// Action names accepted by POST /api/v1/devices/{user}/{deviceId}/{action}.
const (
	ActionWipe        = "wipe"
	ActionAccountWipe = "account-wipe"
	ActionBlock       = "block"
	ActionAllow       = "allow"
	ActionWake        = "wake"
)

// ActionRequest is the optional JSON body of a block or allow action.
type ActionRequest struct {
	// Reason is kept as the device's AccessReason, for other
	// administrators; the phone never sees it.
	Reason string `json:"reason,omitempty"`
}

// conflictError is an action that cannot apply to the device as it is; the
// caller gets 409 with the message.
type conflictError struct{ msg string }

func (e *conflictError) Error() string { return e.msg }

// badRequestError is a mutating call the API could not understand; it is
// audited like any other attempt.
type badRequestError struct{ msg string }

func (e *badRequestError) Error() string { return e.msg }

func (a *API) deviceAction(w http.ResponseWriter, r *http.Request) {
	user, dev, ok := pathIDs(w, r)
	if !ok {
		return
	}
	action := chi.URLParam(r, "action")
	// An empty body is an empty request (json.Decoder reports io.EOF).
	var req ActionRequest
	if r.ContentLength != 0 && r.Body != nil {
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil && !errors.Is(err, io.EOF) {
			a.audit(r, action, user, dev, &badRequestError{err.Error()})
			writeError(w, http.StatusBadRequest, "request body is not a JSON action request: "+err.Error())
			return
		}
	}
	var fn func(*devices.Device) error
	now := a.now().UTC()
	switch action {
	case ActionWake:
		a.wake(w, r, user, dev)
		return
	case ActionWipe, ActionAccountWipe:
		accountOnly := action == ActionAccountWipe
		fn = func(d *devices.Device) error { return requestWipe(d, accountOnly, now) }
	case ActionBlock:
		fn = func(d *devices.Device) error {
			d.Access = devices.AccessBlocked
			d.AccessReason = req.Reason
			if d.AccessReason == "" {
				d.AccessReason = "blocked by an administrator"
			}
			return nil
		}
	case ActionAllow:
		fn = func(d *devices.Device) error {
			// Approved, not merely allowed: an access rule that
			// quarantined the device must not catch it again.
			d.Access = devices.AccessApproved
			d.AccessReason = req.Reason
			return nil
		}
	default:
		msg := fmt.Sprintf("unknown action %q (want wipe, account-wipe, block, allow or wake)", action)
		a.audit(r, action, user, dev, &badRequestError{msg})
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	d, err := a.store.UpdateDevice(r.Context(), user, dev, fn)
	a.audit(r, action, user, dev, err)
	if err != nil {
		a.storeError(w, r, action, err)
		return
	}
	a.deviceChanged(r, user, d.ID)
	writeJSON(w, http.StatusOK, d)
}

// deviceChanged ends the device's waiting request after a change to its
// record. The change is stored already; if the request cannot be reached
// it meets the change at its next request (after its heartbeat), so a
// failure is only logged.
func (a *API) deviceChanged(r *http.Request, user, dev string) {
	if a.waits == nil {
		return
	}
	if err := a.waits.DeviceChanged(r.Context(), user, dev); err != nil {
		a.log.Warn("admin: could not end the device's waiting request", "user", user, "device", dev, "err", err)
	}
}

// wake ends the device's waiting request telling it to sync: 200 with the
// device, 404 for an unknown device, 501 when the gateway has no waiting
// requests to reach.
func (a *API) wake(w http.ResponseWriter, r *http.Request, user, dev string) {
	if a.waits == nil {
		err := &badRequestError{"this server cannot reach waiting requests"}
		a.audit(r, ActionWake, user, dev, err)
		writeError(w, http.StatusNotImplemented, err.msg)
		return
	}
	d, err := a.store.GetDevice(r.Context(), user, dev)
	if err != nil {
		a.audit(r, ActionWake, user, dev, err)
		a.storeError(w, r, ActionWake, err)
		return
	}
	err = a.waits.Wake(r.Context(), user, d.ID)
	a.audit(r, ActionWake, user, dev, err)
	if err != nil {
		a.serverError(w, r, ActionWake, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// requestWipe marks d for a remote wipe (MS-ASPROV 3.1.5.2). An
// account-only wipe (AccountOnlyRemoteWipe, MS-ASPROV 2.2.2.1) exists only
// in protocol 16.1, so it is refused for a device last seen speaking
// anything else. Asking again while a wipe of the same kind is pending
// changes nothing; a device that already acknowledged a wipe must be
// deleted before it can be wiped again.
func requestWipe(d *devices.Device, accountOnly bool, now time.Time) error {
	want := devices.WipePending
	if accountOnly {
		want = devices.WipePendingAccountOnly
		if d.ProtocolVersion != "16.1" {
			v := d.ProtocolVersion
			if v == "" {
				v = "an unknown version"
			}
			return &conflictError{fmt.Sprintf("account-only wipe needs EAS 16.1; the device last spoke %s (use wipe for a full wipe)", v)}
		}
	}
	switch d.Wipe {
	case want:
		return nil
	case devices.WipeAcknowledged:
		return &conflictError{"the device already acknowledged a wipe; delete it to start a new partnership"}
	}
	d.Wipe = want
	d.WipeRequested = now
	d.WipeAcknowledged = time.Time{}
	d.WipeStatus = 0
	return nil
}

// pathIDs returns the {user} and {device} path parameters, unescaped (a
// user name may hold "/" or "\" sent as %2F or %5C).
func pathIDs(w http.ResponseWriter, r *http.Request) (user, dev string, ok bool) {
	user, err1 := url.PathUnescape(chi.URLParam(r, "user"))
	dev, err2 := url.PathUnescape(chi.URLParam(r, "device"))
	if err1 != nil || err2 != nil || user == "" || dev == "" {
		writeError(w, http.StatusBadRequest, "bad user or device id in the path")
		return "", "", false
	}
	return user, dev, true
}

// audit writes the audit line of a mutating call.
func (a *API) audit(r *http.Request, action, user, dev string, err error) {
	result := "ok"
	var ce *conflictError
	var be *badRequestError
	switch {
	case err == nil:
	case errors.Is(err, devices.ErrNotFound):
		result = "not found"
	case errors.As(err, &ce):
		result = "refused"
	case errors.As(err, &be):
		result = "bad request"
	default:
		result = "error"
	}
	attrs := []any{"action", action, "user", user, "device", devices.NormalizeID(dev), "result", result, "remote", r.RemoteAddr}
	if err != nil {
		attrs = append(attrs, "err", err)
	}
	a.log.Info("admin action", attrs...)
}

// storeError answers a store error: 404 for an unknown device, 409 for a
// refused action, 400 for arguments the store refuses, 500 otherwise.
func (a *API) storeError(w http.ResponseWriter, r *http.Request, what string, err error) {
	var ce *conflictError
	switch {
	case errors.Is(err, devices.ErrNotFound):
		writeError(w, http.StatusNotFound, "unknown device")
	case errors.As(err, &ce):
		writeError(w, http.StatusConflict, ce.msg)
	case errors.Is(err, devices.ErrInvalid):
		writeError(w, http.StatusBadRequest, "invalid user or device id")
	default:
		a.serverError(w, r, what, err)
	}
}

// serverError logs err and answers 500 without its details.
func (a *API) serverError(w http.ResponseWriter, r *http.Request, what string, err error) {
	a.log.Error("admin: "+what+" failed", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	writeError(w, http.StatusInternalServerError, "internal error; see the gateway log")
}

// ErrorBody is the JSON body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, ErrorBody{Error: msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"error":"internal error: cannot encode the response"}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	w.Write(b)
}
