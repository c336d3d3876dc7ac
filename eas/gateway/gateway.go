// Package gateway wires easgate together: from one Config it opens the
// device store (Redis or an embedded bbolt file), the mail backend, the
// policy file, the EAS front door and the admin API, and serves them on
// their two listeners until its context ends.
//
// It exists so that `easgate serve`, `easgate demo` and the end-to-end
// tests build the very same server: the command line only turns flags into
// a Config, and the tests start a Gateway on free loopback ports and talk
// to it over HTTP.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/devices/boltstore"
	"github.com/easgate/easgate/devices/redisstore"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/admin"
	"github.com/easgate/easgate/eas/push"
	"github.com/easgate/easgate/policy"
)

// Defaults of Config.
const (
	DefaultListen          = ":8080"
	DefaultAdminListen     = "127.0.0.1:8081"
	DefaultDataDir         = "easgate-data"
	DefaultShutdownTimeout = 15 * time.Second
	DefaultWriteTimeout    = 5 * time.Minute
)

// Security is how the gateway connects to the IMAP or SMTP server.
type Security string

// Connection security modes.
const (
	SecurityNone     Security = "none"     // plain TCP (loopback or a trusted network only)
	SecurityStartTLS Security = "starttls" // plain TCP upgraded with STARTTLS
	SecurityTLS      Security = "tls"      // implicit TLS (IMAPS 993, SMTPS 465)
)

// ParseSecurity parses "none", "starttls" or "tls".
func ParseSecurity(s string) (Security, error) {
	switch sec := Security(strings.ToLower(strings.TrimSpace(s))); sec {
	case SecurityNone, SecurityStartTLS, SecurityTLS:
		return sec, nil
	}
	return "", fmt.Errorf("%w: security %q (want none, starttls or tls)", ErrConfig, s)
}

// imapSecurity maps the configured security onto imapstore's.
var imapSecurity = map[Security]imapstore.Security{
	SecurityNone:     imapstore.SecurityNone,
	SecurityStartTLS: imapstore.SecurityStartTLS,
	SecurityTLS:      imapstore.SecurityTLS,
}

// ErrConfig reports a Config New cannot use.
var ErrConfig = errors.New("gateway: bad configuration")

// Config is everything `easgate serve` can be told.
type Config struct {
	// Listen is the EAS listener address; default DefaultListen.
	Listen string
	// TLSCert and TLSKey, when both set, make the EAS listener HTTPS.
	TLSCert, TLSKey string
	// PublicURL is the EAS URL Autodiscover hands out; empty means
	// "https://" + the request's Host.
	PublicURL string
	// MailDomain completes logins without "@" into addresses.
	MailDomain string

	// AdminListen is the admin API listener; default DefaultAdminListen.
	// "-" disables the admin listener.
	AdminListen string
	// AdminToken is the admin API's bearer token (EASGATE_ADMIN_TOKEN).
	// Without it the gateway refuses to start unless AdminListen is "-".
	AdminToken string

	// IMAP is the mail server's IMAP address, host:port. Required unless
	// Authenticator is set.
	IMAP         string
	IMAPSecurity Security
	// IMAPMaxConnsPerUser bounds each user's pooled IMAP connections
	// (imapstore.Options.MaxConnsPerUser, default 2); a user's watcher
	// adds one IDLE connection. IMAPIdleTimeout closes pooled
	// connections unused this long (default 5 minutes). While a user's
	// watcher runs, requests borrow its IDLE connection and open pooled
	// ones only after waiting IMAPLendWait for it (default 1 s; negative:
	// never borrow): imapstore.Options.LendWait.
	IMAPMaxConnsPerUser int
	IMAPIdleTimeout     time.Duration
	IMAPLendWait        time.Duration
	// SMTP is the submission server, host:port, and SMTPSecurity how to
	// reach it. Mail is to be submitted with the phone user's own
	// credentials; nothing uses it until the send commands are wired.
	SMTP         string
	SMTPSecurity Security
	// TLSConfig, when not nil, is used for TLS to the IMAP and SMTP
	// servers (e.g. to trust a private CA); ServerName is filled in.
	TLSConfig *tls.Config

	// Redis, when set, is the device store: a redis:// or rediss:// URL.
	// A URL with addr= parameters names a Redis Cluster (go-redis
	// ParseClusterURL). Without it the store is a bbolt file in DataDir.
	Redis string
	// DataDir holds the bbolt store; default DefaultDataDir.
	DataDir string

	// PolicyFile is the TOML policy file (docs/policy.md); empty means the
	// built-in default policy. SIGHUP reloads it.
	PolicyFile string

	// ShutdownTimeout bounds the graceful shutdown; default
	// DefaultShutdownTimeout. Requests still running then (long Pings)
	// are cut.
	ShutdownTimeout time.Duration

	// WriteTimeout bounds how long writing a response may take, counted
	// from the end of the request's headers (http.Server.WriteTimeout);
	// default DefaultWriteTimeout. Ping and hanging Sync extend their own
	// deadline to their heartbeat, so it need not cover them.
	WriteTimeout time.Duration

	// PingMinHeartbeat and PingMaxHeartbeat bound the heartbeat of Ping
	// and hanging Sync (defaults 60 s and 3540 s, eas.Config);
	// PingMaxFolders bounds a Ping's folders (default 300).
	PingMinHeartbeat time.Duration
	PingMaxHeartbeat time.Duration
	PingMaxFolders   int
	// PollInterval is how often a user's watcher reads the change marks
	// of the folders IMAP IDLE does not cover (every watched folder but
	// the Inbox, and the Inbox while IDLE is down); default 30 s
	// (push.DefaultPollInterval).
	PollInterval time.Duration
	// WatchLinger keeps a user's watcher (and its IDLE connection) open
	// this long after the last waiting request ended, for the phone's
	// next Ping; default 10 s (push.DefaultLinger), negative for none.
	WatchLinger time.Duration

	// Authenticator, when not nil, replaces the IMAP login check (for
	// embedding and tests of the wiring alone).
	Authenticator backend.Authenticator
	// Sleep replaces the wait of the wrong-password slow-down (tests).
	Sleep func(ctx context.Context, d time.Duration) error
	// Throttle configures the wrong-password slow-down.
	Throttle eas.Throttle
}

// Gateway is a configured easgate. Start it with Run.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	store    devices.Store
	rdb      redis.UniversalClient // nil with the bolt store
	mail     *imapstore.Store      // nil when Config.Authenticator replaces it
	policy   *policy.Holder
	registry *prometheus.Registry
	eas      *eas.Server
	admin    http.Handler // nil when disabled
	hub      *push.Hub    // the per-user mail watchers
	broker   push.Broker  // where Pings and hanging Syncs wait

	mu        sync.Mutex
	easLn     net.Listener
	adminLn   net.Listener
	closeOnce sync.Once
	closeErr  error
}

// New opens the stores and builds the handlers; it does not listen yet.
// Close releases what it opened (Run does so when it returns).
func New(cfg Config, log *slog.Logger) (*Gateway, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	ok := false
	defer func() {
		if !ok {
			g.Close()
		}
	}()
	var err error
	if g.policy, err = policy.NewHolder(cfg.PolicyFile); err != nil {
		return nil, fmt.Errorf("gateway: policy: %w", err)
	}
	if err := g.openStore(); err != nil {
		return nil, err
	}
	auth := cfg.Authenticator
	if auth == nil {
		if g.mail, err = imapstore.New(imapstore.Options{
			Addr:            cfg.IMAP,
			Security:        imapSecurity[cfg.IMAPSecurity],
			TLSConfig:       cfg.TLSConfig,
			MaxConnsPerUser: cfg.IMAPMaxConnsPerUser,
			IdleTimeout:     cfg.IMAPIdleTimeout,
			LendWait:        cfg.IMAPLendWait,
			Logger:          log.With("component", "imap"),
		}); err != nil {
			return nil, fmt.Errorf("gateway: IMAP backend: %w", err)
		}
		auth = g.mail
	}
	g.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	g.registry.MustRegister(eas.NewDeviceCollector(g.countDevices, 10*time.Second, log))
	var mail backend.Store
	if g.mail != nil {
		mail = g.mail
	}
	g.hub = &push.Hub{PollInterval: cfg.PollInterval, Linger: cfg.WatchLinger, Logger: log.With("component", "push")}
	if g.rdb != nil {
		b, err := push.NewRedisBroker(context.Background(), g.rdb, "", log.With("component", "push"))
		if err != nil {
			return nil, fmt.Errorf("gateway: %w", err)
		}
		g.broker = b
	} else {
		g.broker = &push.Registry{}
	}
	g.registry.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "easgate_push_watchers",
			Help: "Users whose mailbox this instance watches for waiting Pings and hanging Syncs (one IMAP IDLE each)."},
			func() float64 { return float64(g.hub.Watchers()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "easgate_push_waiting",
			Help: "Pings and hanging Syncs waiting on this instance."},
			func() float64 { return float64(g.broker.(interface{ Len() int }).Len()) }),
	)
	if g.eas, err = eas.New(eas.Config{
		Authenticator: auth,
		Mail:          mail,
		Devices:       g.store,
		Policy:        g.policy,
		MailDomain:    cfg.MailDomain,
		PublicURL:     cfg.PublicURL,
		Logger:        log,
		Registerer:    g.registry,
		Sleep:         cfg.Sleep,
		Throttle:      cfg.Throttle,

		PingMinHeartbeat: cfg.PingMinHeartbeat,
		PingMaxHeartbeat: cfg.PingMaxHeartbeat,
		PingMaxFolders:   cfg.PingMaxFolders,
		PingBroker:       g.broker,
		Watchers:         g.hub,
	}); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if cfg.AdminListen != "-" {
		a, err := admin.New(admin.Options{
			Store:   g.store,
			Token:   cfg.AdminToken,
			Logger:  log,
			Metrics: promhttp.HandlerFor(g.registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelError)}),
			Health:  g.health,
			Waits:   waits{g.broker},
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: refusing to start the admin listener: %w", err)
		}
		g.admin = a
	}
	ok = true
	return g, nil
}

// fill applies the defaults and checks the configuration.
func (c *Config) fill() error {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.AdminListen == "" {
		c.AdminListen = DefaultAdminListen
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.IMAPSecurity == "" {
		c.IMAPSecurity = SecurityNone
	}
	if c.SMTPSecurity == "" {
		c.SMTPSecurity = SecurityNone
	}
	for _, s := range []Security{c.IMAPSecurity, c.SMTPSecurity} {
		if _, err := ParseSecurity(string(s)); err != nil {
			return err
		}
	}
	if c.IMAP == "" && c.Authenticator == nil {
		return fmt.Errorf("%w: no IMAP server (-imap host:port); try `easgate demo` for a self-contained trial", ErrConfig)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("%w: -tls-cert and -tls-key go together", ErrConfig)
	}
	return nil
}

// openStore opens Redis when configured, the bbolt file otherwise.
func (g *Gateway) openStore() error {
	if g.cfg.Redis == "" {
		path := filepath.Join(g.cfg.DataDir, "devices.db")
		s, err := boltstore.Open(path)
		if err != nil {
			return fmt.Errorf("gateway: device store: %w", err)
		}
		g.store = s
		g.log.Info("device store: bbolt", "file", path)
		return nil
	}
	rdb, err := redisClient(g.cfg.Redis)
	if err != nil {
		return err
	}
	s, err := redisstore.New(rdb)
	if err != nil {
		rdb.Close()
		return fmt.Errorf("gateway: device store: %w", err)
	}
	g.rdb, g.store = rdb, s
	g.log.Info("device store: redis", "url", redactURL(g.cfg.Redis))
	return nil
}

// redisClient builds the client for a -redis URL: a Cluster client when the
// URL lists more nodes with addr= parameters, a single-server client
// otherwise.
func redisClient(u string) (redis.UniversalClient, error) {
	if strings.Contains(u, "?addr=") || strings.Contains(u, "&addr=") {
		o, err := redis.ParseClusterURL(u)
		if err != nil {
			return nil, fmt.Errorf("%w: -redis: %v", ErrConfig, err)
		}
		return redis.NewClusterClient(o), nil
	}
	o, err := redis.ParseURL(u)
	if err != nil {
		return nil, fmt.Errorf("%w: -redis: %v", ErrConfig, err)
	}
	return redis.NewClient(o), nil
}

// redactURL hides the password of a URL for the log.
func redactURL(u string) string {
	at := strings.LastIndex(u, "@")
	scheme := strings.Index(u, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return u
	}
	user := u[scheme+3 : at]
	if name, _, ok := strings.Cut(user, ":"); ok {
		return u[:scheme+3] + name + ":xxxxx" + u[at:]
	}
	return u
}

// health is the admin API's /healthz check: the device store answers.
func (g *Gateway) health(ctx context.Context) error {
	if g.rdb != nil {
		return g.rdb.Ping(ctx).Err()
	}
	_, err := g.store.AuthFailures(ctx, "healthz")
	return err
}

// Device states reported by the easgate_devices gauge.
const (
	StateAllowed     = "allowed"
	StateApproved    = "approved"
	StateBlocked     = "blocked"
	StateQuarantined = "quarantined"
	StateWipePending = "wipe-pending"
	StateWiped       = "wiped"
)

// countDevices counts the devices in each state for the easgate_devices
// gauge. Each device counts once: a wipe state wins over the access state.
func (g *Gateway) countDevices(ctx context.Context) (map[string]int, error) {
	list, err := g.store.ListDevices(ctx, "")
	if err != nil {
		return nil, err
	}
	counts := map[string]int{StateAllowed: 0, StateApproved: 0, StateBlocked: 0, StateQuarantined: 0, StateWipePending: 0, StateWiped: 0}
	for _, d := range list {
		counts[deviceState(d)]++
	}
	return counts, nil
}

func deviceState(d *devices.Device) string {
	switch {
	case d.Wipe.Pending():
		return StateWipePending
	case d.Wipe == devices.WipeAcknowledged:
		return StateWiped
	case d.Access == devices.AccessBlocked:
		return StateBlocked
	case d.Access == devices.AccessQuarantined:
		return StateQuarantined
	case d.Access == devices.AccessApproved:
		return StateApproved
	}
	return StateAllowed
}

// waits is the admin API's way to a device's waiting request: a signal
// through the broker, which reaches other instances too.
type waits struct{ b push.Broker }

func (w waits) DeviceChanged(ctx context.Context, user, device string) error {
	return w.b.Signal(ctx, push.Key{User: user, Device: devices.NormalizeID(device)}, push.DeviceChanged)
}

func (w waits) Wake(ctx context.Context, user, device string) error {
	return w.b.Signal(ctx, push.Key{User: user, Device: devices.NormalizeID(device)}, push.Wake)
}

// Handler returns the EAS front door (for tests that use httptest).
func (g *Gateway) Handler() http.Handler { return g.eas }

// AdminHandler returns the admin API, or nil when it is disabled.
func (g *Gateway) AdminHandler() http.Handler { return g.admin }

// EAS returns the EAS server, on which further commands are registered
// before serving.
func (g *Gateway) EAS() *eas.Server { return g.eas }

// Mail returns the mail backend the EAS commands work on, or nil when
// Config.Authenticator replaced it.
func (g *Gateway) Mail() backend.Store {
	if g.mail == nil {
		return nil
	}
	return g.mail
}

// Store returns the device store.
func (g *Gateway) Store() devices.Store { return g.store }

// Registry returns the metrics registry the admin API serves.
func (g *Gateway) Registry() *prometheus.Registry { return g.registry }

// ReloadPolicy reads the policy file again, as SIGHUP does; on failure the
// previous policy stays in force.
func (g *Gateway) ReloadPolicy() error { return g.policy.Reload() }

// Listen binds the listeners (Run does it if it has not been done), so that
// a caller that asked for port 0 can learn the addresses before serving.
func (g *Gateway) Listen() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.easLn != nil {
		return nil
	}
	ln, err := net.Listen("tcp", g.cfg.Listen)
	if err != nil {
		return fmt.Errorf("gateway: EAS listener: %w", err)
	}
	if g.admin != nil {
		aln, err := net.Listen("tcp", g.cfg.AdminListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("gateway: admin listener: %w", err)
		}
		g.adminLn = aln
	}
	g.easLn = ln
	return nil
}

// Addr returns the EAS listener's address ("" before Listen).
func (g *Gateway) Addr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.easLn == nil {
		return ""
	}
	return g.easLn.Addr().String()
}

// AdminAddr returns the admin listener's address ("" before Listen or when
// disabled).
func (g *Gateway) AdminAddr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.adminLn == nil {
		return ""
	}
	return g.adminLn.Addr().String()
}

// TLS reports whether the EAS listener serves HTTPS.
func (g *Gateway) TLS() bool { return g.cfg.TLSCert != "" }

// Run serves until ctx ends, then shuts down gracefully: the listeners
// close at once, requests in flight get ShutdownTimeout to finish, and the
// stores are closed. The policy file is reloaded on SIGHUP meanwhile. Run
// returns nil after a shutdown caused by ctx, or the error that stopped a
// listener.
func (g *Gateway) Run(ctx context.Context) error {
	defer g.Close()
	if err := g.Listen(); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if g.cfg.PolicyFile != "" {
		policy.WatchSIGHUP(ctx, g.policy, g.log)
	}

	easSrv := g.httpServer(g.eas, "eas")
	easLn := g.easLn
	if g.TLS() {
		cert, err := tls.LoadX509KeyPair(g.cfg.TLSCert, g.cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("gateway: loading the TLS certificate: %w", err)
		}
		// TLS inside the parking listener: a parked connection goes
		// back to net/http as the *tls.Conn it came from (eas.Server.Listener).
		easSrv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}}
		easLn = tls.NewListener(easLn, easSrv.TLSConfig)
	}
	servers := []*http.Server{easSrv}
	lns := []net.Listener{g.eas.Listener(easLn)}
	if g.adminLn != nil {
		servers = append(servers, g.httpServer(g.admin, "admin"))
		lns = append(lns, g.adminLn)
	}
	errc := make(chan error, len(servers))
	for i, srv := range servers {
		go func() {
			err := srv.Serve(lns[i])
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}()
	}
	g.log.Info("easgate serving", "eas", g.Addr(), "tls", g.TLS(), "admin", g.AdminAddr())

	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		// One listener failed; stop the other too.
	}
	g.log.Info("easgate shutting down", "grace", g.cfg.ShutdownTimeout)
	// Waiting Pings and hanging Syncs answer now ("nothing changed"), so
	// that phones come back to another instance instead of being cut.
	g.eas.EndWaits()
	sctx, scancel := context.WithTimeout(context.Background(), g.cfg.ShutdownTimeout)
	defer scancel()
	for _, srv := range servers {
		if err := srv.Shutdown(sctx); err != nil {
			g.log.Warn("graceful shutdown cut short; closing the remaining connections", "err", err)
			srv.Close()
		}
	}
	if err := g.eas.AwaitParked(sctx); err != nil {
		g.log.Warn("graceful shutdown cut short; parked requests not all answered", "err", err)
	}
	return runErr
}

func (g *Gateway) httpServer(h http.Handler, name string) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 30 * time.Second,
		// Ping and hanging Sync hold requests for up to an hour
		// (MS-ASCMD 2.2.3.88) and extend their own write deadline
		// (eas.Request.ExtendWriteDeadline).
		WriteTimeout: g.cfg.WriteTimeout,
		IdleTimeout:  5 * time.Minute,
		ErrorLog:     slog.NewLogLogger(g.log.With("listener", name).Handler(), slog.LevelWarn),
	}
}

// Close releases the mail backend's connections and the device store. It
// is safe to call more than once.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		for _, ln := range []net.Listener{g.easLn, g.adminLn} {
			if ln != nil {
				ln.Close()
			}
		}
		g.mu.Unlock()
		var errs []error
		if g.hub != nil {
			g.hub.Close()
		}
		if b, ok := g.broker.(*push.RedisBroker); ok {
			errs = append(errs, b.Close())
		}
		if g.mail != nil {
			errs = append(errs, g.mail.Close())
		}
		if g.store != nil {
			errs = append(errs, g.store.Close())
		}
		g.closeErr = errors.Join(errs...)
	})
	return g.closeErr
}
