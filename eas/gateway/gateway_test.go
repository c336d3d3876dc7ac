package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/testsrv"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/devices/redistest"
	"github.com/easgate/easgate/eas/admin"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// passwords is an Authenticator over a fixed map, for tests of the wiring
// alone.
type passwords map[string]string

func (p passwords) Authenticate(_ context.Context, user, pw string) error {
	if want, ok := p[user]; ok && want == pw {
		return nil
	}
	return backend.ErrAuthFailed
}

const token = "gateway-test-token-0123456789"

func TestNewRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		cfg  Config
		want error
	}{
		{"no IMAP", Config{AdminToken: token, DataDir: dir}, ErrConfig},
		{"no admin token", Config{IMAP: "127.0.0.1:1", DataDir: dir}, admin.ErrNoToken},
		{"short admin token", Config{IMAP: "127.0.0.1:1", DataDir: dir, AdminToken: "short"}, admin.ErrNoToken},
		{"cert without key", Config{IMAP: "127.0.0.1:1", DataDir: dir, AdminToken: token, TLSCert: "c.pem"}, ErrConfig},
		{"bad security", Config{IMAP: "127.0.0.1:1", DataDir: dir, AdminToken: token, IMAPSecurity: "ssl"}, ErrConfig},
		{"bad redis URL", Config{IMAP: "127.0.0.1:1", AdminToken: token, Redis: "http://nope"}, ErrConfig},
	}
	for _, tc := range tests {
		g, err := New(tc.cfg, quiet)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
		if g != nil {
			t.Errorf("%s: got a gateway", tc.name)
		}
	}
	// The admin listener may be switched off, and then needs no token.
	g, err := New(Config{IMAP: "127.0.0.1:1", DataDir: dir, AdminListen: "-"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if g.AdminHandler() != nil {
		t.Error("admin handler without admin listener")
	}
	g.Close()
}

func TestParseSecurity(t *testing.T) {
	for in, want := range map[string]Security{"none": SecurityNone, "STARTTLS": SecurityStartTLS, " tls ": SecurityTLS} {
		if got, err := ParseSecurity(in); err != nil || got != want {
			t.Errorf("ParseSecurity(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseSecurity("ssl"); !errors.Is(err, ErrConfig) {
		t.Errorf("ParseSecurity(ssl) = %v", err)
	}
}

func TestRedisClientAndRedaction(t *testing.T) {
	c, err := redisClient("redis://:secret@127.0.0.1:6379/3")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*redis.Client); !ok {
		t.Errorf("single-node URL gave a %T", c)
	}
	c.Close()
	cl, err := redisClient("redis://127.0.0.1:7000?addr=127.0.0.1:7001&addr=127.0.0.1:7002")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cl.(*redis.ClusterClient); !ok {
		t.Errorf("URL with addr= gave a %T", cl)
	}
	cl.Close()
	for in, want := range map[string]string{
		"redis://:secret@h:6379/0":     "redis://:xxxxx@h:6379/0",
		"redis://user:secret@h:6379/0": "redis://user:xxxxx@h:6379/0",
		"redis://h:6379/0":             "redis://h:6379/0",
		"redis://user@h:6379/0":        "redis://user@h:6379/0",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestDeviceState(t *testing.T) {
	for _, tc := range []struct {
		d    devices.Device
		want string
	}{
		{devices.Device{}, StateAllowed},
		{devices.Device{Access: devices.AccessBlocked}, StateBlocked},
		{devices.Device{Access: devices.AccessQuarantined}, StateQuarantined},
		{devices.Device{Access: devices.AccessApproved}, StateApproved},
		{devices.Device{Access: devices.AccessBlocked, Wipe: devices.WipePending}, StateWipePending},
		{devices.Device{Wipe: devices.WipePendingAccountOnly}, StateWipePending},
		{devices.Device{Access: devices.AccessBlocked, Wipe: devices.WipeAcknowledged}, StateWiped},
	} {
		if got := deviceState(&tc.d); got != tc.want {
			t.Errorf("deviceState(%+v) = %s, want %s", tc.d, got, tc.want)
		}
	}
}

// TestWiringBolt runs a gateway on the bbolt store with a fixed
// authenticator: the EAS handler registers a device, the admin handler
// lists it and the gauge counts it, and Run shuts down when asked.
func TestWiringBolt(t *testing.T) {
	dir := t.TempDir()
	g, err := New(Config{
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", AdminToken: token, DataDir: dir,
		Authenticator: passwords{"alice": "pw"},
	}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "devices.db")); err != nil {
		t.Errorf("bolt file: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	// Run binds before serving; Listen is idempotent and makes the
	// addresses known here.
	if err := g.Listen(); err != nil {
		t.Fatal(err)
	}

	req, _ := http.NewRequest(http.MethodPost, "http://"+g.Addr()+"/Microsoft-Server-ActiveSync?Cmd=Settings&User=alice&DeviceId=Dev1&DeviceType=iPhone", nil)
	req.SetBasicAuth("alice", "pw")
	req.Header.Set("MS-ASProtocolVersion", "14.1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 449 {
		t.Errorf("unprovisioned Settings = %d, want 449", resp.StatusCode)
	}

	d, err := g.Store().GetDevice(ctx, "alice", "dev1")
	if err != nil || d.Type != "iPhone" {
		t.Fatalf("device after the request: %+v, %v", d, err)
	}
	rec := httptest.NewRecorder()
	areq := httptest.NewRequest(http.MethodGet, "/metrics", nil)
	areq.Header.Set("Authorization", "Bearer "+token)
	g.AdminHandler().ServeHTTP(rec, areq)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `easgate_devices{state="allowed"} 1`) ||
		!strings.Contains(rec.Body.String(), "go_goroutines") {
		t.Errorf("metrics = %d\n%s", rec.Code, rec.Body.String())
	}
	hresp, err := http.Get("http://" + g.AdminAddr() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		t.Errorf("healthz = %d", hresp.StatusCode)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	// After Run the listeners are closed and the store released: the file
	// can be opened again.
	if _, err := http.Get("http://" + g.Addr() + "/healthz"); err == nil {
		t.Error("EAS listener still open after Run")
	}
	g2, err := New(Config{AdminListen: "-", DataDir: dir, Authenticator: passwords{}}, quiet)
	if err != nil {
		t.Fatalf("reopening the store after Run: %v", err)
	}
	g2.Close()
}

// TestHealthRedis: /healthz follows Redis.
func TestHealthRedis(t *testing.T) {
	rs := redistest.Start(t)
	g, err := New(Config{AdminToken: token, Redis: "redis://" + rs.Addr, Authenticator: passwords{}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	get := func() int {
		rec := httptest.NewRecorder()
		g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		return rec.Code
	}
	if c := get(); c != http.StatusOK {
		t.Errorf("healthz with Redis up = %d", c)
	}
	rs.Stop()
	if c := get(); c != http.StatusServiceUnavailable {
		t.Errorf("healthz with Redis down = %d", c)
	}
}

// TestIMAPBackend: the gateway's mail backend logs in against a real
// Dovecot (right password, wrong password: ErrAuthFailed), and a gateway
// whose IMAP server is down answers phones 503 with Retry-After, not 401.
func TestIMAPBackend(t *testing.T) {
	dc := testsrv.StartDovecot(t, map[string]string{"alice": "alicepw"})
	g, err := New(Config{AdminListen: "-", DataDir: t.TempDir(), IMAP: dc.Addr}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := g.Mail().Authenticate(ctx, "alice", "alicepw"); err != nil {
		t.Errorf("right password: %v", err)
	}
	for _, up := range [][2]string{{"alice", "wrong"}, {"nobody", "x"}} {
		if err := g.Mail().Authenticate(ctx, up[0], up[1]); !errors.Is(err, backend.ErrAuthFailed) {
			t.Errorf("%s/%s: %v, want ErrAuthFailed", up[0], up[1], err)
		}
	}

	dead, err := New(Config{AdminListen: "-", DataDir: t.TempDir(), IMAP: "127.0.0.1:1"}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodOptions, "/Microsoft-Server-ActiveSync", nil)
	req.SetBasicAuth("alice", "alicepw")
	dead.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("OPTIONS with IMAP down = %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
}

// TestSIGHUPReloadsPolicy: while Run serves, SIGHUP reloads the policy
// file. The reload happens in the background, so the test waits for the
// new configuration to appear (bounded, not timed).
func TestSIGHUPReloadsPolicy(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policy.toml")
	if err := os.WriteFile(file, []byte("[provisioning]\nrequired = true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := New(Config{Listen: "127.0.0.1:0", AdminListen: "-", DataDir: t.TempDir(), PolicyFile: file, Authenticator: passwords{}}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if !g.policy.Config().ProvisioningRequired() {
		t.Fatal("policy file not loaded")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	// Run registers for SIGHUP before serving; a served request proves
	// it is past that point.
	if err := g.Listen(); err != nil {
		t.Fatal(err)
	}
	for {
		resp, err := http.Get("http://" + g.Addr() + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := os.WriteFile(file, []byte("[provisioning]\nrequired = false\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	for i := 0; g.policy.Config().ProvisioningRequired(); i++ {
		if i == 1000 {
			t.Fatal("policy not reloaded 10 s after SIGHUP")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
