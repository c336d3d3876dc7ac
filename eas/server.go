package eas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/eas/push"
	"github.com/easgate/easgate/policy"
	"github.com/easgate/easgate/wbxml"
)

// Path is the EAS endpoint (MS-ASHTTP 2.2.1.1).
const Path = "/Microsoft-Server-ActiveSync"

// DefaultVersions are the protocol versions offered when Config.Versions is
// empty (the digest recommends 14.1 and 16.1, with 12.x for old clients).
var DefaultVersions = []string{"12.0", "12.1", "14.0", "14.1", "16.0", "16.1"}

// knownVersions are the versions EAS defines; Config.Versions must be a
// subset (2.5 is not: its WAP-XML provisioning is not implemented).
var knownVersions = []string{"12.0", "12.1", "14.0", "14.1", "16.0", "16.1"}

// Defaults of Config.
const (
	DefaultServerVersion = "16.1"
	DefaultMaxBodyBytes  = 64 << 20
	DefaultAuthCacheTTL  = 5 * time.Minute
)

// Config configures a Server.
type Config struct {
	// Authenticator checks HTTP Basic credentials. Required.
	Authenticator backend.Authenticator
	// Devices is the device store. With it every authenticated POST
	// registers the device and passes the provisioning gate, failed logins
	// are counted across instances, and Provision and Settings are
	// registered. Without it (tests of other commands) none of that
	// happens.
	Devices devices.Store
	// Policy holds the policy file; nil means policy.Default().
	Policy *policy.Holder
	// Mail is the mail store handlers reach through Request.Mailbox. With
	// it (and Devices) the folder commands are registered.
	Mail backend.Store
	// RoleOverrides gives folders a role by full name, for mail servers
	// without SPECIAL-USE (e.g. "Gesendete Objekte" → backend.RoleSent);
	// see eas/hierarchy.Options.
	RoleOverrides map[string]backend.Role

	// Versions are the protocol versions offered in OPTIONS and accepted
	// on POST; empty means DefaultVersions.
	Versions []string
	// ServerVersion is the MS-Server-ActiveSync header; default "16.1".
	ServerVersion string
	// MaxBodyBytes bounds a request body (after gzip decoding); larger
	// bodies get 413. Default 64 MiB.
	MaxBodyBytes int64
	// AuthCacheTTL is how long a verified password is trusted without
	// asking the mail server again; default 5 minutes, negative disables.
	AuthCacheTTL time.Duration
	// Throttle configures the slow-down for wrong passwords.
	Throttle Throttle

	// PingMinHeartbeat and PingMaxHeartbeat bound a Ping's
	// HeartbeatInterval (Status 5 outside) and a hanging Sync's Wait or
	// HeartbeatInterval (Status 14 outside); defaults 60 s and 3540 s.
	// PingMaxFolders bounds a Ping's folders (Status 6); default 300.
	// PingPollInterval is how often the user's watcher reads the marks
	// of folders IMAP IDLE does not cover, when Watchers is nil; default
	// 30 s.
	PingMinHeartbeat time.Duration
	PingMaxHeartbeat time.Duration
	PingMaxFolders   int
	PingPollInterval time.Duration
	// PingBroker ends a device's older Ping or hanging Sync when a newer
	// one arrives, and carries administrators' signals to it, across
	// instances when it is a push.RedisBroker; nil means an in-process
	// push.Registry.
	PingBroker push.Broker
	// Watchers runs the per-user mail watchers Ping and hanging Sync wait
	// on; nil means a push.Hub of the server's own with PingPollInterval.
	// Whoever made it closes it.
	Watchers *push.Hub

	// MailDomain is appended as "@MailDomain" to logins without "@" to
	// form the user's address (Settings UserInformation, Autodiscover).
	MailDomain string
	// PublicURL is the EAS URL Autodiscover hands out, e.g.
	// "https://mail.example.com/Microsoft-Server-ActiveSync". Empty means
	// "https://" + the request's Host + Path.
	PublicURL string

	// Logger receives one line per request; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the metrics; nil means a new registry of the
	// server's own (see Server.Registry). Never the global registry.
	Registerer prometheus.Registerer

	// Now and Sleep replace the clock and the throttle's wait in tests.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
}

// Server is the EAS front door. It is an http.Handler for the main
// listener. Register commands with Handle before serving.
type Server struct {
	cfg      Config
	log      *slog.Logger
	policy   *policy.Holder
	versions []string
	registry *prometheus.Registry // nil when Config.Registerer was given
	metrics  *Metrics
	reg      prometheus.Registerer // where commands register their metrics
	cache    *authCache
	failures *failureTracker
	handlers map[string]Handler // by command name as in commands
	router   chi.Router
	broker   push.Broker // where Ping and hanging Sync wait
	hub      *push.Hub   // the per-user mail watchers
	parking  parking     // requests waiting without a goroutine of net/http's (park.go)
	busy     busyDevices // devices whose Sync or MoveItems runs here (busy.go)

	// colls lets one Sync or MoveItems at a time work on a collection (colllock.go).
	colls collectionLocks
}

// New returns a Server for cfg, with Provision and Settings registered when
// a device store is configured.
func New(cfg Config) (*Server, error) {
	if cfg.Authenticator == nil {
		return nil, errors.New("eas: Config.Authenticator is required")
	}
	s := &Server{cfg: cfg, handlers: make(map[string]Handler)}
	if s.cfg.Logger == nil {
		s.cfg.Logger = slog.Default()
	}
	s.log = s.cfg.Logger
	s.policy = cfg.Policy
	if s.policy == nil {
		h, err := policy.NewHolder("")
		if err != nil {
			return nil, err
		}
		s.policy = h
	}
	s.versions = DefaultVersions
	if len(cfg.Versions) > 0 {
		for _, v := range cfg.Versions {
			if !slices.Contains(knownVersions, v) {
				return nil, fmt.Errorf("eas: unsupported protocol version %q (known: %s)", v, strings.Join(knownVersions, ","))
			}
		}
		s.versions = slices.Clone(cfg.Versions)
		slices.SortFunc(s.versions, func(a, b string) int { return versionNumber(a) - versionNumber(b) })
		s.versions = slices.Compact(s.versions)
	}
	if s.cfg.ServerVersion == "" {
		s.cfg.ServerVersion = DefaultServerVersion
	}
	if s.cfg.MaxBodyBytes <= 0 {
		s.cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if s.cfg.AuthCacheTTL == 0 {
		s.cfg.AuthCacheTTL = DefaultAuthCacheTTL
	}
	if s.cfg.Now == nil {
		s.cfg.Now = time.Now
	}
	if s.cfg.Sleep == nil {
		s.cfg.Sleep = sleepContext
	}
	reg := cfg.Registerer
	if reg == nil {
		s.registry = prometheus.NewRegistry()
		reg = s.registry
	}
	s.reg = reg
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("eas: registering metrics: %w", err)
	}
	s.metrics = m
	s.cache = newAuthCache(s.cfg.AuthCacheTTL)
	s.failures = newFailureTracker(cfg.Throttle, cfg.Devices, s.log)
	s.broker = cfg.PingBroker
	if s.broker == nil {
		s.broker = &push.Registry{}
	}
	s.hub = cfg.Watchers
	if s.hub == nil {
		s.hub = &push.Hub{PollInterval: positiveOr(cfg.PingPollInterval, DefaultPingPollInterval),
			Logger: s.log.With("component", "push")}
	}

	if cfg.Devices != nil {
		s.mustHandle("Provision", s.provision)
		s.mustHandle("Settings", s.settings)
		s.registerFolderCommands()
		s.registerMailSync()
		s.registerItemOperations()
		s.registerPing()
	}

	r := chi.NewRouter()
	r.MethodFunc(http.MethodOptions, Path, s.serveOptions)
	r.MethodFunc(http.MethodPost, Path, s.servePost)
	r.MethodFunc(http.MethodGet, Path, s.serveGet)
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", "OPTIONS, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	})
	// Autodiscover paths are case-insensitive (the digest §1.8); chi's
	// patterns are not, so the route matches any path and checks itself.
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.URL.Path, AutodiscoverPath) {
			s.serveAutodiscover(w, r)
			return
		}
		http.NotFound(w, r)
	})
	s.router = r
	return s, nil
}

// Handle registers h for the command name (MS-ASHTTP 2.2.1.1.1.2, e.g.
// "FolderSync"), replacing an earlier registration. The name must be an
// EAS command. Registered commands are the ones OPTIONS advertises. Handle
// must not be called while the server is serving.
func (s *Server) Handle(name string, h Handler) error {
	c, ok := commandByName(name)
	if !ok {
		return fmt.Errorf("eas: %q is not an EAS command", name)
	}
	if h == nil {
		return fmt.Errorf("eas: nil handler for %s", c.Name)
	}
	s.handlers[c.Name] = h
	return nil
}

func (s *Server) mustHandle(name string, h Handler) {
	if err := s.Handle(name, h); err != nil {
		panic(err) // only called with names from the command table
	}
}

// Commands returns the registered command names in the order of MS-ASHTTP's
// command codes: the MS-ASProtocolCommands list.
func (s *Server) Commands() []string {
	var out []string
	for _, c := range commands {
		if _, ok := s.handlers[c.Name]; ok {
			out = append(out, c.Name)
		}
	}
	return out
}

// Versions returns the protocol versions on offer, oldest first.
func (s *Server) Versions() []string { return slices.Clone(s.versions) }

// Registry returns the server's own metrics registry, or nil when
// Config.Registerer was given (then the metrics are there).
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.router.ServeHTTP(w, r) }

// versionNumber maps "14.1" to 141 (the base64 query's encoding), and
// anything that is not major.minor to 0.
func versionNumber(v string) int {
	maj, minor, ok := strings.Cut(v, ".")
	a, err1 := strconv.Atoi(maj)
	b, err2 := strconv.Atoi(minor)
	if !ok || err1 != nil || err2 != nil || a < 0 || a > 25 || b < 0 || b > 9 {
		return 0
	}
	return a*10 + b
}

// commonHeaders sets the headers every EAS response carries (the digest
// §1.6).
func (s *Server) commonHeaders(h http.Header) {
	h.Set("MS-Server-ActiveSync", s.cfg.ServerVersion)
	h.Set("Cache-Control", "private")
}

// serveOptions answers OPTIONS (MS-ASHTTP 3.2.5.2): 401 without a body
// when unauthenticated, else 200, empty, with the versions and commands.
func (s *Server) serveOptions(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Now()
	s.metrics.inFlight.Inc()
	defer s.metrics.inFlight.Dec()
	rec := &logRecord{command: "OPTIONS", remote: r.RemoteAddr}
	defer func() { s.finish(rec, start) }()

	if _, err := s.authenticate(r, rec); err != nil {
		s.writeAuthError(w, r, err, "", command{}, rec)
		return
	}
	h := w.Header()
	s.commonHeaders(h)
	h.Set("MS-ASProtocolVersions", strings.Join(s.versions, ","))
	h.Set("MS-ASProtocolCommands", strings.Join(s.Commands(), ","))
	h.Set("Allow", "OPTIONS,POST")
	h.Set("Public", "OPTIONS,POST")
	h.Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
	rec.code = http.StatusOK
}

// serveGet answers a browser's GET: 401 to unauthenticated callers (like
// every other method), otherwise a one-line page saying what the URL is.
// Clients never GET this path (the digest §1.1).
func (s *Server) serveGet(w http.ResponseWriter, r *http.Request) {
	start := s.cfg.Now()
	rec := &logRecord{command: "GET", remote: r.RemoteAddr}
	defer func() { s.finish(rec, start) }()
	if _, err := s.authenticate(r, rec); err != nil {
		s.writeAuthError(w, r, err, "", command{}, rec)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "private")
	w.WriteHeader(http.StatusOK)
	rec.code = http.StatusOK
	fmt.Fprintln(w, "This is an Exchange ActiveSync endpoint; point your phone's mail app at this server.")
}

// logRecord collects the fields of the per-request log line.
type logRecord struct {
	user, device, deviceType, command, version, remote string
	code, status                                       int
	cause                                              error
}

// finish writes the log line and the metrics of a request.
func (s *Server) finish(rec *logRecord, start time.Time) {
	d := s.cfg.Now().Sub(start)
	s.metrics.observe(rec.command, rec.code, rec.status, d)
	attrs := []slog.Attr{
		slog.String("user", rec.user),
		slog.String("device", rec.device),
		slog.String("device_type", rec.deviceType),
		slog.String("cmd", rec.command),
		slog.String("version", rec.version),
		slog.Int("http", rec.code),
		slog.Int("status", rec.status),
		slog.Duration("duration", d),
		slog.String("remote", rec.remote),
	}
	level := slog.LevelInfo
	if rec.cause != nil {
		attrs = append(attrs, slog.String("err", rec.cause.Error()))
		if rec.code >= 500 {
			level = slog.LevelWarn
		}
	}
	s.log.LogAttrs(context.Background(), level, "eas request", attrs...)
}

// errClientGone is the cause logged when the client left before an answer.
var errClientGone = errors.New("client went away")

// writeError writes the response for err in the request's version and
// command (see StatusError).
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, version string, cmd command, err error, rec *logRecord) {
	se := errorStatus(err)
	rec.cause = err
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		// The phone hung up (a Ping it abandoned); nobody reads an answer.
		rec.code, rec.cause = 499, errClientGone
		return
	}
	h := w.Header()
	s.commonHeaders(h)
	h.Set("Content-Type", ContentTypeWBXML)
	if se.HTTP == http.StatusServiceUnavailable {
		h.Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
	}
	if se.HTTP == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Basic realm="easgate"`)
	}
	if se.Status != 0 && cmd.Status != 0 && versionNumber(version) >= 140 {
		code := se.BodyHTTP
		if code == 0 {
			code = http.StatusOK
		}
		h.Del("Retry-After")
		b, merr := wbxml.Marshal(statusElement(cmd, se.Status))
		if merr == nil {
			rec.code, rec.status = code, se.Status
			s.writeBody(w, r, code, ContentTypeWBXML, bytes.NewReader(b), int64(len(b)))
			return
		}
		rec.cause = errors.Join(err, merr)
	}
	rec.code = se.HTTP
	h.Set("Content-Length", "0")
	w.WriteHeader(se.HTTP)
}
