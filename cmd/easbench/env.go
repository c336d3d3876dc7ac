package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/easgate/easgate/backend/testsrv"
	"github.com/easgate/easgate/devices/redistest"
	"github.com/easgate/easgate/eas/gateway"
)

// gatewayEnv, when set, makes the binary run the gateway instead of the
// load: its value is the JSON of gatewayConfig. The admin token travels
// in tokenEnv.
const (
	gatewayEnv = "EASBENCH_GATEWAY"
	tokenEnv   = "EASBENCH_ADMIN_TOKEN"
)

// gatewayConfig is what the gateway process is told.
type gatewayConfig struct {
	LogLevel slog.Level `json:"level"`
	IMAP     string     `json:"imap"`
	// IMAPIdleTimeout closes the gateway's pooled IMAP connections
	// unused this long (0: the gateway's default).
	IMAPIdleTimeout time.Duration `json:"imapIdle"`
	// IMAPMaxConns bounds the pooled IMAP connections per user (0: the
	// gateway's default).
	IMAPMaxConns int    `json:"imapMaxConns,omitempty"`
	Redis        string `json:"redis"`
	DataDir      string `json:"data"`
	// Pprof, when set, serves net/http/pprof on this address.
	Pprof string `json:"pprof,omitempty"`
}

// gatewayAddrs is the line the gateway process prints once it listens.
type gatewayAddrs struct {
	EAS   string `json:"eas"`
	Admin string `json:"admin"`
}

// runGateway is gateway mode: eas/gateway on free loopback ports, as
// `easgate serve` runs it, until SIGTERM. It prints gatewayAddrs as one
// JSON line on stdout once listening, and logs warnings to stderr.
func runGateway(raw string) int {
	var gc gatewayConfig
	if err := json.Unmarshal([]byte(raw), &gc); err != nil {
		fmt.Fprintf(os.Stderr, "easbench gateway: bad %s: %v\n", gatewayEnv, err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: gc.LogLevel}))
	g, err := gateway.New(gateway.Config{
		Listen:              "127.0.0.1:0",
		AdminListen:         "127.0.0.1:0",
		AdminToken:          os.Getenv(tokenEnv),
		IMAP:                gc.IMAP,
		IMAPIdleTimeout:     gc.IMAPIdleTimeout,
		IMAPMaxConnsPerUser: gc.IMAPMaxConns,
		Redis:               gc.Redis,
		DataDir:             gc.DataDir,
		ShutdownTimeout:     2 * time.Second,
	}, log)
	if err != nil {
		log.Error("easbench gateway: cannot start", "err", err)
		return 1
	}
	if err := g.Listen(); err != nil {
		log.Error("easbench gateway: cannot listen", "err", err)
		return 1
	}
	if gc.Pprof != "" {
		// The profiles of the gateway process itself, to see where its
		// memory goes (go tool pprof http://ADDR/debug/pprof/heap).
		ln, err := net.Listen("tcp", gc.Pprof)
		if err != nil {
			log.Error("easbench gateway: pprof listener", "err", err)
			return 1
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		go http.Serve(ln, mux)
	}
	line, _ := json.Marshal(gatewayAddrs{EAS: g.Addr(), Admin: g.AdminAddr()})
	fmt.Fprintf(os.Stdout, "%s\n", line)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := g.Run(ctx); err != nil {
		log.Error("easbench gateway: stopped", "err", err)
		return 1
	}
	return 0
}

// target is the gateway and IMAP server a run measures.
type target struct {
	easURL     string
	adminURL   string // "" when unknown
	adminToken string
	imapAddr   string
	pid        int              // the gateway's process; 0 when unknown
	dovecot    *testsrv.Dovecot // nil unless spawned
	spawned    string
	gatewayLog string
	processes  int // Dovecot imap process_limit, with -spawn
	clients    int // Dovecot imap client_limit, with -spawn
	stop       func() error
}

// externalTarget is a gateway the caller runs.
func externalTarget(cfg config) *target {
	return &target{
		easURL: strings.TrimSuffix(cfg.easURL, "/"), adminURL: strings.TrimSuffix(cfg.adminURL, "/"),
		adminToken: cfg.adminToken, imapAddr: cfg.imapAddr, pid: cfg.pid,
		stop: func() error { return nil },
	}
}

// maxDovecotProcesses keeps the imap processes well under the kernel's
// default of 128 inotify instances per uid (fs.inotify.max_user_instances):
// every IDLEing imap process holds one, all of them as the same mail user,
// and past the limit Dovecot falls back to polling every
// mailbox_idle_check_interval (30 s).
const maxDovecotProcesses = 64

// dovecotLimits returns the configuration that lets one Dovecot carry
// conns IMAP connections: the imap service serves perProcess clients per
// process (0: as many as keep it under maxDovecotProcesses), login runs
// in performance mode, the per-user+IP limit is out of the way, and the
// services every process talks to (anvil, auth, stats, log) accept them
// all. It returns the configuration, the process limit and the client
// limit.
func dovecotLimits(conns, perProcess int) (string, int, int) {
	if perProcess <= 0 {
		perProcess = max(50, (conns+maxDovecotProcesses-1)/maxDovecotProcesses)
	}
	// The master starts a process for a burst of connections before
	// the ones it has fill up; leave room for that.
	procs := 2*((conns+perProcess-1)/perProcess) + 16
	// auth counts every imap and login process (and imap-urlauth's,
	// which follows the default process limit) as a client.
	all := conns + 3*procs + 500
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("default_process_limit = %d", procs+16)
	p("default_client_limit = %d", all)
	p("default_vsz_limit = 1G")
	p("protocol imap {")
	p("  mail_max_userip_connections = %d", conns+16)
	p("}")
	p("service imap {")
	// imap's service_count is 1 by default: one client per process,
	// whatever client_limit says.
	p("  service_count = 0")
	p("  process_limit = %d", procs)
	p("  client_limit = %d", perProcess)
	p("}")
	p("service imap-login {")
	p("  service_count = 0")
	p("  process_min_avail = 2")
	p("  process_limit = 8")
	p("  client_limit = %d", all)
	p("}")
	for _, svc := range []string{"anvil", "auth", "stats", "log"} {
		p("service %s {", svc)
		p("  client_limit = %d", all)
		p("}")
	}
	return b.String(), procs, perProcess
}

// spawnTarget starts Dovecot, redis-server and the gateway. logw gets
// progress lines.
func spawnTarget(ctx context.Context, cfg config, users map[string]string, logw io.Writer) (t *target, err error) {
	t = &target{}
	var stops []func() error
	t.stop = func() error {
		var errs []error
		for i := len(stops) - 1; i >= 0; i-- {
			errs = append(errs, stops[i]())
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			t.stop()
		}
	}()

	// Today every waiting Ping may hold an IMAP connection of its own
	// besides the pooled ones; leave room for that.
	conns := cfg.pings + 2*cfg.users + 64
	extra, procs, clients := dovecotLimits(conns, cfg.perProcess)
	t.processes, t.clients = procs, clients
	d, err := testsrv.Launch(testsrv.Options{Users: users, Config: extra})
	if err != nil {
		return nil, fmt.Errorf("starting Dovecot: %w", err)
	}
	stops = append(stops, d.Stop, func() error {
		// Keep Dovecot's log beside the gateway's: Stop removes it.
		if t.gatewayLog == "" {
			return nil
		}
		return os.WriteFile(t.gatewayLog+".dovecot", []byte(d.Log()), 0o644)
	})
	t.dovecot, t.imapAddr = d, d.Addr
	fmt.Fprintf(logw, "easbench: Dovecot pid %d on %s (%d users; imap: %d processes × %d clients)\n", d.PID, d.Addr, len(users), procs, clients)

	rs, err := redistest.Launch()
	if err != nil {
		return nil, fmt.Errorf("starting redis-server: %w", err)
	}
	stops = append(stops, rs.Stop)
	fmt.Fprintf(logw, "easbench: redis-server pid %d on %s\n", rs.PID, rs.Addr)

	dataDir, err := os.MkdirTemp("", "easbench-")
	if err != nil {
		return nil, err
	}
	stops = append(stops, func() error { return os.RemoveAll(dataDir) })
	t.gatewayLog = cfg.gatewayLog
	if t.gatewayLog == "" {
		f, err := os.CreateTemp("", "easbench-gateway-*.log")
		if err != nil {
			return nil, err
		}
		f.Close()
		t.gatewayLog = f.Name()
	}
	logFile, err := os.OpenFile(t.gatewayLog, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child holds its own copy

	t.adminToken = randomToken()
	redisURL := "redis://" + rs.Addr + "/0"
	var cmd *exec.Cmd
	var addrs gatewayAddrs
	if cfg.easgateBinary != "" {
		if cfg.pprof != "" {
			return nil, errors.New("-gateway-pprof needs the gateway mode of easbench; leave out -easgate")
		}
		eas, err := freeAddr()
		if err != nil {
			return nil, err
		}
		admin, err := freeAddr()
		if err != nil {
			return nil, err
		}
		addrs = gatewayAddrs{EAS: eas, Admin: admin}
		args := []string{"serve", "-listen", eas, "-admin-listen", admin,
			"-imap", d.Addr, "-redis", redisURL, "-data", dataDir, "-shutdown-timeout", "2s"}
		if cfg.imapIdle != 0 {
			args = append(args, "-imap-idle-timeout", cfg.imapIdle.String())
		}
		if cfg.imapMaxConns != 0 {
			args = append(args, "-imap-max-conns", strconv.Itoa(cfg.imapMaxConns))
		}
		cmd = exec.Command(cfg.easgateBinary, args...)
		cmd.Env = append(os.Environ(), "EASGATE_ADMIN_TOKEN="+t.adminToken)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		t.spawned = "easgate serve (" + cfg.easgateBinary + ")"
	} else {
		self, err := os.Executable()
		if err != nil {
			return nil, err
		}
		gc, _ := json.Marshal(gatewayConfig{LogLevel: cfg.gatewayLevel, IMAP: d.Addr, IMAPIdleTimeout: cfg.imapIdle, IMAPMaxConns: cfg.imapMaxConns, Pprof: cfg.pprof, Redis: redisURL, DataDir: dataDir})
		cmd = exec.Command(self)
		cmd.Env = append(os.Environ(), gatewayEnv+"="+string(gc), tokenEnv+"="+t.adminToken)
		cmd.Stderr = logFile
		t.spawned = "eas/gateway in a child process (" + filepath.Base(self) + " in gateway mode)"
	}
	if cfg.memLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+cfg.memLimit)
		t.spawned += ", GOMEMLIMIT=" + cfg.memLimit
	}
	var stdout io.ReadCloser
	if cmd.Stdout == nil {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the gateway: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stops = append(stops, func() error { return stopProcess(cmd.Process, exited) })
	t.pid = cmd.Process.Pid

	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if stdout != nil {
		lines := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			lines <- line
			io.Copy(io.Discard, stdout)
		}()
		select {
		case line := <-lines:
			if err := json.Unmarshal([]byte(line), &addrs); err != nil {
				return nil, fmt.Errorf("the gateway did not start (log %s): %q", t.gatewayLog, line)
			}
		case err := <-exited:
			exited <- err
			return nil, fmt.Errorf("the gateway exited: %v (log %s)", err, t.gatewayLog)
		case <-ctx.Done():
			return nil, fmt.Errorf("the gateway did not start in time (log %s)", t.gatewayLog)
		}
	} else if err := waitHealthy(ctx, "http://"+addrs.Admin+"/healthz", exited); err != nil {
		return nil, fmt.Errorf("%w (log %s)", err, t.gatewayLog)
	}
	t.easURL, t.adminURL = "http://"+addrs.EAS, "http://"+addrs.Admin
	fmt.Fprintf(logw, "easbench: gateway pid %d on %s (admin %s), log %s\n", t.pid, addrs.EAS, addrs.Admin, t.gatewayLog)
	t.spawned = fmt.Sprintf("Dovecot %s, redis-server %s, %s pid %d", d.Addr, rs.Addr, t.spawned, t.pid)
	return t, nil
}

// stopProcess ends a child with SIGTERM, and SIGKILL after a grace period.
func stopProcess(p *os.Process, exited chan error) error {
	p.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		return nil
	case <-time.After(20 * time.Second):
		p.Kill()
		<-exited
		return fmt.Errorf("gateway pid %d ignored SIGTERM; killed", p.Pid)
	}
}

// waitHealthy polls url until it answers 200, the process exits or ctx
// ends.
func waitHealthy(ctx context.Context, url string, exited chan error) error {
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			exited <- err
			return fmt.Errorf("the gateway exited: %v", err)
		case <-ctx.Done():
			return errors.New("the gateway did not become healthy in time")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func randomToken() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// freeAddr returns a free loopback address.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return "127.0.0.1:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}
