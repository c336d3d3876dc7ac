package eas

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/devices/boltstore"
	"github.com/easgate/easgate/policy"
	"github.com/easgate/easgate/wbxml"
)

// fakeAuth is an in-test backend.Authenticator with a fixed user table.
type fakeAuth struct {
	mu       sync.Mutex
	users    map[string]string // user → password
	down     bool              // answer ErrUnavailable
	calls    int
	lastUser string
	lastPass string
}

func (a *fakeAuth) Authenticate(ctx context.Context, user, password string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.calls++
	a.lastUser, a.lastPass = user, password
	if a.down {
		return fmt.Errorf("imap dial: %w", backend.ErrUnavailable)
	}
	if p, ok := a.users[user]; ok && p == password {
		return nil
	}
	return fmt.Errorf("imap LOGIN refused: %w", backend.ErrAuthFailed)
}

func (a *fakeAuth) callCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

const (
	testUser     = "jane@example.com"
	testPassword = "S3cret-pa55word"
)

// testEnv is a Server with a fake authenticator, a captured log and,
// optionally, a bbolt device store.
type testEnv struct {
	t      testing.TB
	srv    *Server
	auth   *fakeAuth
	log    *bytes.Buffer
	store  devices.Store
	now    time.Time
	sleeps []time.Duration
	mu     sync.Mutex
}

type envOption func(*Config)

func withStore(t testing.TB) envOption {
	return func(c *Config) {
		st, err := boltstore.Open(filepath.Join(t.TempDir(), "devices.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		c.Devices = st
	}
}

// withPolicy loads a policy file with the given TOML text.
func withPolicy(t testing.TB, toml string) envOption {
	return func(c *Config) {
		path := filepath.Join(t.TempDir(), "policy.toml")
		if err := os.WriteFile(path, []byte(toml), 0o600); err != nil {
			t.Fatal(err)
		}
		h, err := policy.NewHolder(path)
		if err != nil {
			t.Fatal(err)
		}
		c.Policy = h
	}
}

// noProvisioning switches the provisioning gate off.
const noProvisioning = "[provisioning]\nrequired = false\n"

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	e := &testEnv{t: t, auth: &fakeAuth{users: map[string]string{testUser: testPassword, "bob": "b\u00e4r"}},
		log: &bytes.Buffer{}, now: time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)}
	cfg := Config{
		Authenticator: e.auth,
		Logger:        slog.New(slog.NewJSONHandler(lockedWriter{&e.mu, e.log}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now: func() time.Time {
			e.mu.Lock()
			defer e.mu.Unlock()
			return e.now
		},
		Sleep: func(ctx context.Context, d time.Duration) error {
			e.mu.Lock()
			e.sleeps = append(e.sleeps, d)
			e.mu.Unlock()
			return ctx.Err()
		},
		MailDomain: "example.org",
		PublicURL:  "https://mail.example.com/Microsoft-Server-ActiveSync",
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.store = srv, cfg.Devices
	return e
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (e *testEnv) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

func basic(user, password string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+password))
}

// post builds an EAS POST with the plain query.
func post(cmd, version string, body []byte) *http.Request {
	r := httptest.NewRequest(http.MethodPost, Path+"?Cmd="+cmd+"&User=jane%40example.com&DeviceId=ApplDEV1&DeviceType=iPhone", bytes.NewReader(body))
	r.Header.Set("Authorization", basic(testUser, testPassword))
	r.Header.Set("MS-ASProtocolVersion", version)
	r.Header.Set("Content-Type", ContentTypeWBXML)
	r.Header.Set("User-Agent", "Apple-iPhone11C8/2007.75")
	r.RemoteAddr = "192.0.2.7:50123"
	return r
}

func (e *testEnv) do(r *http.Request) *httptest.ResponseRecorder {
	e.t.Helper()
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	return w
}

func mustMarshal(t testing.TB, e *wbxml.Element) []byte {
	t.Helper()
	b, err := wbxml.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// decode decodes a response body (gunzipping it when marked) as WBXML.
func decode(t testing.TB, w *httptest.ResponseRecorder) *wbxml.Element {
	t.Helper()
	var r io.Reader = w.Body
	if w.Header().Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(w.Body)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	doc, err := wbxml.Parse(r, wbxml.DefaultLimits)
	if err != nil {
		t.Fatalf("response is not WBXML: %v", err)
	}
	return doc
}

func statusOf(t *testing.T, w *httptest.ResponseRecorder, root, status wbxml.Tag) string {
	t.Helper()
	doc := decode(t, w)
	if doc.Tag != root {
		t.Fatalf("root %v, want %v", doc.Tag, root)
	}
	return doc.ChildText(status)
}

func folderSyncBody(t testing.TB) []byte {
	return mustMarshal(t, wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchySyncKey, "0")))
}

// folderSyncOK is a handler answering a fixed FolderSync document.
func folderSyncOK(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
	return Response{Element: wbxml.E(wbxml.FolderHierarchyFolderSync,
		wbxml.T(wbxml.FolderHierarchyStatus, "1"), wbxml.T(wbxml.FolderHierarchySyncKey, "1"))}, nil
}

func TestOptions(t *testing.T) {
	e := newEnv(t, withStore(t))
	if err := e.srv.Handle("FolderSync", folderSyncOK); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.Handle("NoSuchCommand", folderSyncOK); err == nil {
		t.Error("Handle accepted an unknown command name")
	}

	r := httptest.NewRequest(http.MethodOptions, Path, nil)
	w := e.do(r)
	if w.Code != http.StatusUnauthorized || w.Body.Len() != 0 || w.Header().Get("WWW-Authenticate") != `Basic realm="easgate"` {
		t.Errorf("unauthenticated OPTIONS: %d %q %v", w.Code, w.Body.String(), w.Header())
	}
	if w.Header().Get("MS-ASProtocolVersions") != "" {
		t.Error("unauthenticated OPTIONS reveals the versions")
	}

	r.Header.Set("Authorization", basic(testUser, testPassword))
	w = e.do(r)
	want := map[string]string{
		"MS-ASProtocolVersions": "12.0,12.1,14.0,14.1,16.0,16.1",
		"MS-ASProtocolCommands": "FolderSync,Settings,Provision",
		"MS-Server-ActiveSync":  "16.1",
		"Allow":                 "OPTIONS,POST",
		"Public":                "OPTIONS,POST",
		"Content-Length":        "0",
		"Cache-Control":         "private",
	}
	if w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("OPTIONS: %d, body %q", w.Code, w.Body.String())
	}
	for k, v := range want {
		if got := w.Header().Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
}

func TestOptionsConfiguredVersions(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Versions = []string{"16.1", "14.1", "14.1"} })
	r := httptest.NewRequest(http.MethodOptions, Path, nil)
	r.Header.Set("Authorization", basic(testUser, testPassword))
	w := e.do(r)
	if got := w.Header().Get("MS-ASProtocolVersions"); got != "14.1,16.1" {
		t.Errorf("versions %q", got)
	}
	if got := w.Header().Get("MS-ASProtocolCommands"); got != "" {
		t.Errorf("commands %q without any handler", got)
	}
	if _, err := New(Config{Authenticator: e.auth, Versions: []string{"2.5"}}); err == nil {
		t.Error("New accepted version 2.5")
	}
}

func TestGetAndOtherMethods(t *testing.T) {
	e := newEnv(t)
	r := httptest.NewRequest(http.MethodGet, Path, nil)
	if w := e.do(r); w.Code != http.StatusUnauthorized {
		t.Errorf("GET without credentials: %d", w.Code)
	}
	r.Header.Set("Authorization", basic(testUser, testPassword))
	if w := e.do(r); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "ActiveSync") {
		t.Errorf("GET: %d %q", w.Code, w.Body.String())
	}
	r = httptest.NewRequest(http.MethodPut, Path, nil)
	if w := e.do(r); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", w.Code)
	}
	r = httptest.NewRequest(http.MethodGet, "/elsewhere", nil)
	if w := e.do(r); w.Code != http.StatusNotFound {
		t.Errorf("other path: %d", w.Code)
	}
}

func TestAuthForms(t *testing.T) {
	e := newEnv(t)
	e.srv.Handle("FolderSync", folderSyncOK)
	e.auth.users["jane"] = "pw"
	e.auth.users["j\u00f6rg"] = "g\u00e4st\u20ac" // the euro sign is not Latin-1
	e.auth.users["anna"] = "caf\u00e9"
	tests := []struct {
		name     string
		header   string
		wantCode int
		wantUser string
		wantPass string
	}{
		{"plain user", basic("jane", "pw"), 200, "jane", "pw"},
		{"user@domain", basic(testUser, testPassword), 200, testUser, testPassword},
		{"DOMAIN\\user", basic(`EXAMPLE\jane`, "pw"), 200, "jane", "pw"},
		{"UTF-8", basic("j\u00f6rg", "g\u00e4st\u20ac"), 200, "j\u00f6rg", "g\u00e4st\u20ac"},
		{"Latin-1", "Basic " + base64.StdEncoding.EncodeToString([]byte("anna:caf\xe9")), 200, "anna", "caf\u00e9"},
		{"lower-case scheme", "basic " + base64.StdEncoding.EncodeToString([]byte("jane:pw")), 200, "jane", "pw"},
		{"wrong password", basic("jane", "nope"), 401, "jane", "nope"},
		{"no header", "", 401, "", ""},
		{"not base64", "Basic %%%", 401, "", ""},
		{"no colon", "Basic " + base64.StdEncoding.EncodeToString([]byte("jane")), 401, "", ""},
		{"empty user", basic(`EXAMPLE\`, "pw"), 401, "", ""},
		{"bearer", "Bearer abc", 401, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.auth.lastUser, e.auth.lastPass = "", ""
			e.srv.cache = newAuthCache(DefaultAuthCacheTTL)
			r := post("FolderSync", "14.1", folderSyncBody(t))
			r.URL.RawQuery = "Cmd=FolderSync&DeviceId=d1&DeviceType=t"
			r.Header.Set("Authorization", tt.header)
			if tt.header == "" {
				r.Header.Del("Authorization")
			}
			w := e.do(r)
			if w.Code != tt.wantCode {
				t.Fatalf("code %d, want %d", w.Code, tt.wantCode)
			}
			if e.auth.lastUser != tt.wantUser || e.auth.lastPass != tt.wantPass {
				t.Errorf("authenticator got %q/%q, want %q/%q", e.auth.lastUser, e.auth.lastPass, tt.wantUser, tt.wantPass)
			}
			if w.Code == 401 {
				if w.Header().Get("WWW-Authenticate") != `Basic realm="easgate"` || w.Body.Len() != 0 {
					t.Errorf("401 without challenge or with a body: %v %q", w.Header(), w.Body.String())
				}
			}
		})
	}
}

func TestAuthBackendDown(t *testing.T) {
	e := newEnv(t)
	e.srv.Handle("FolderSync", folderSyncOK)
	e.auth.down = true
	w := e.do(post("FolderSync", "12.1", folderSyncBody(t)))
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Errorf("12.1: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	w = e.do(post("FolderSync", "14.1", folderSyncBody(t)))
	if w.Code != http.StatusOK || statusOf(t, w, wbxml.FolderHierarchyFolderSync, wbxml.FolderHierarchyStatus) != "111" {
		t.Errorf("14.1: %d", w.Code)
	}
}

func TestAuthCache(t *testing.T) {
	e := newEnv(t)
	e.srv.Handle("FolderSync", folderSyncOK)
	for range 3 {
		if w := e.do(post("FolderSync", "14.1", folderSyncBody(t))); w.Code != 200 {
			t.Fatalf("code %d", w.Code)
		}
	}
	if n := e.auth.callCount(); n != 1 {
		t.Errorf("authenticator called %d times for 3 requests, want 1", n)
	}
	// Another password is not served from the cache.
	r := post("FolderSync", "14.1", folderSyncBody(t))
	r.Header.Set("Authorization", basic(testUser, "guess"))
	if w := e.do(r); w.Code != 401 {
		t.Errorf("wrong password after a cached good one: %d", w.Code)
	}
	if n := e.auth.callCount(); n != 2 {
		t.Errorf("authenticator calls %d, want 2", n)
	}
	// After the TTL the password is checked again.
	e.advance(DefaultAuthCacheTTL + time.Second)
	e.do(post("FolderSync", "14.1", folderSyncBody(t)))
	if n := e.auth.callCount(); n != 3 {
		t.Errorf("authenticator calls %d after expiry, want 3", n)
	}
	// A handler that finds the password refused drops the cache entry.
	e.srv.Handle("FolderSync", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		return Response{}, fmt.Errorf("imap: %w", backend.ErrAuthFailed)
	})
	if w := e.do(post("FolderSync", "14.1", folderSyncBody(t))); w.Code != 401 {
		t.Errorf("handler auth failure: %d", w.Code)
	}
	e.srv.Handle("FolderSync", folderSyncOK)
	e.do(post("FolderSync", "14.1", folderSyncBody(t)))
	if n := e.auth.callCount(); n != 4 {
		t.Errorf("authenticator calls %d after a refused cached password, want 4", n)
	}
}

func TestAuthThrottle(t *testing.T) {
	for _, name := range []string{"memory", "store"} {
		t.Run(name, func(t *testing.T) {
			var opts []envOption
			if name == "store" {
				opts = append(opts, withStore(t), withPolicy(t, noProvisioning))
			}
			e := newEnv(t, opts...)
			e.srv.Handle("FolderSync", folderSyncOK)
			attempt := func(password, addr string) int {
				r := post("FolderSync", "14.1", folderSyncBody(t))
				r.Header.Set("Authorization", basic(testUser, password))
				r.RemoteAddr = addr
				return e.do(r).Code
			}
			for range 6 {
				if c := attempt("guess", "198.51.100.1:1000"); c != 401 {
					t.Fatalf("code %d", c)
				}
			}
			want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second}
			if fmt.Sprint(e.sleeps) != fmt.Sprint(want) {
				t.Errorf("delays %v, want %v", e.sleeps, want)
			}
			if name == "store" {
				n, err := e.store.AuthFailures(context.Background(), failureKey(testUser, "198.51.100.1:1000"))
				if err != nil || n != 6 {
					t.Errorf("store count %d, %v; want 6", n, err)
				}
			}
			// Another address is not slowed down, nor locked out.
			e.sleeps = nil
			if c := attempt(testPassword, "203.0.113.9:2000"); c != 200 || len(e.sleeps) != 0 {
				t.Errorf("other address: %d, delays %v", c, e.sleeps)
			}
			// The right password from the slowed address waits once, then
			// resets the count.
			e.srv.cache = newAuthCache(DefaultAuthCacheTTL)
			if c := attempt(testPassword, "198.51.100.1:1000"); c != 200 {
				t.Errorf("good password: %d", c)
			}
			if c := attempt("guess", "198.51.100.1:1000"); c != 401 {
				t.Errorf("code %d", c)
			}
			if want := []time.Duration{16 * time.Second}; fmt.Sprint(e.sleeps) != fmt.Sprint(want) {
				t.Errorf("delays after reset %v, want %v", e.sleeps, want)
			}
			// The count expires after the window.
			e.sleeps = nil
			for range 2 {
				attempt("guess", "198.51.100.1:1000")
			}
			e.advance(16 * time.Minute)
			if name == "store" {
				// The store keeps its own clock; clear it as its TTL would.
				e.store.ResetAuthFailures(context.Background(), failureKey(testUser, "198.51.100.1:1000"))
			}
			attempt("guess", "198.51.100.1:1000")
			if want := []time.Duration{time.Second}; fmt.Sprint(e.sleeps) != fmt.Sprint(want) {
				t.Errorf("delays across the window %v, want %v", e.sleeps, want)
			}
		})
	}
}

func TestThrottleDelay(t *testing.T) {
	th := Throttle{Free: 2, Base: time.Second, Max: 30 * time.Second}
	want := []time.Duration{0, 0, 1, 2, 4, 8, 16, 30, 30, 30}
	for n, w := range want {
		if got := th.Delay(n); got != w*time.Second {
			t.Errorf("Delay(%d) = %v, want %v", n, got, w*time.Second)
		}
	}
	if got := th.Delay(1000); got != 30*time.Second {
		t.Errorf("Delay(1000) = %v", got)
	}
}

func TestThrottleClientGone(t *testing.T) {
	e := newEnv(t)
	e.srv.cfg.Sleep = sleepContext
	e.srv.failures.throttle.Base = time.Hour
	e.srv.failures.throttle.Max = time.Hour
	e.srv.Handle("FolderSync", folderSyncOK)
	ctx, cancel := context.WithCancel(context.Background())
	r := post("FolderSync", "14.1", folderSyncBody(t)).WithContext(ctx)
	r.Header.Set("Authorization", basic(testUser, "guess"))
	for range 3 {
		e.srv.failures.fail(ctx, failureKey(testUser, r.RemoteAddr), e.now)
	}
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- e.do(r) }()
	cancel()
	w := <-done
	if w.Code != http.StatusOK || w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Errorf("a response was written to a client that left: %d %v", w.Code, w.Header())
	}
	if e.auth.callCount() != 0 {
		t.Error("the password was checked after the client left")
	}
}

func TestPasswordNeverLogged(t *testing.T) {
	e := newEnv(t, withStore(t))
	e.srv.Handle("FolderSync", folderSyncOK)
	for _, pw := range []string{testPassword, testPassword + "x"} {
		r := post("FolderSync", "14.1", folderSyncBody(t))
		r.Header.Set("Authorization", basic(testUser, pw))
		e.do(r)
		r = httptest.NewRequest(http.MethodOptions, Path, nil)
		r.Header.Set("Authorization", basic(testUser, pw))
		e.do(r)
	}
	e.auth.down = true
	r := post("FolderSync", "14.1", folderSyncBody(t))
	r.Header.Set("Authorization", basic(testUser, "another-"+testPassword))
	e.do(r)
	logged := e.log.String()
	if !strings.Contains(logged, testUser) || !strings.Contains(logged, `"cmd":"FolderSync"`) {
		t.Fatalf("log lacks the request lines: %s", logged)
	}
	for _, secret := range []string{testPassword, base64.StdEncoding.EncodeToString([]byte(testUser + ":" + testPassword)), "Basic "} {
		if strings.Contains(logged, secret) {
			t.Errorf("log contains %q:\n%s", secret, logged)
		}
	}
}

func TestLogLine(t *testing.T) {
	e := newEnv(t)
	e.srv.Handle("FolderSync", folderSyncOK)
	e.do(post("FolderSync", "14.1", folderSyncBody(t)))
	for _, f := range []string{`"user":"jane@example.com"`, `"device":"appldev1"`, `"device_type":"iPhone"`,
		`"cmd":"FolderSync"`, `"version":"14.1"`, `"http":200`, `"status":1`, `"duration":`, `"remote":"192.0.2.7:50123"`} {
		if !strings.Contains(e.log.String(), f) {
			t.Errorf("log line lacks %s: %s", f, e.log.String())
		}
	}
}

// errorCase is one request and how the phone must see it.
type errorCase struct {
	name    string
	req     func() *http.Request
	code    int
	status  string // top-level Status in the body, "" for an empty body
	root    wbxml.Tag
	statTag wbxml.Tag
}

func runErrorCases(t *testing.T, e *testEnv, cases []errorCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := e.do(c.req())
			if w.Code != c.code {
				t.Fatalf("code %d, want %d (body %q)", w.Code, c.code, w.Body.Bytes())
			}
			if ct := w.Header().Get("Content-Type"); ct != ContentTypeWBXML {
				t.Errorf("Content-Type %q", ct)
			}
			if c.status == "" {
				if w.Body.Len() != 0 || w.Header().Get("Content-Length") != "0" {
					t.Errorf("body %q, Content-Length %q; want empty", w.Body.Bytes(), w.Header().Get("Content-Length"))
				}
				return
			}
			root, st := c.root, c.statTag
			if root == 0 {
				root, st = wbxml.FolderHierarchyFolderSync, wbxml.FolderHierarchyStatus
			}
			if got := statusOf(t, w, root, st); got != c.status {
				t.Errorf("status %q, want %q", got, c.status)
			}
		})
	}
}

func TestErrorsByVersion(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Versions = []string{"12.1", "14.1", "16.1"} })
	e.srv.Handle("FolderSync", folderSyncOK)
	e.srv.Handle("MeetingResponse", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		return Response{}, nil
	})
	e.srv.Handle("Ping", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		return Response{}, fmt.Errorf("imap: %w", backend.ErrUnavailable)
	})
	e.srv.Handle("Sync", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		return Response{}, errors.New("bug")
	})
	withQuery := func(version, q string) func() *http.Request {
		return func() *http.Request {
			r := post("FolderSync", version, folderSyncBody(t))
			r.URL.RawQuery = q
			return r
		}
	}
	withBody := func(cmd, version string, b []byte) func() *http.Request {
		return func() *http.Request { return post(cmd, version, b) }
	}
	bad := []byte{0x03, 0x01, 0x6a, 0x00, 0x00, 0x07, 0x56, 0x52, 0x03, 0x30} // truncated
	wrongRoot := mustMarshal(t, wbxml.E(wbxml.AirSyncSync))
	runErrorCases(t, e, []errorCase{
		{name: "ok 14.1", req: withBody("FolderSync", "14.1", folderSyncBody(t)), code: 200, status: "1"},
		{name: "version not offered, 14.0", req: withBody("FolderSync", "14.0", folderSyncBody(t)), code: 200, status: "138"},
		{name: "version not offered, 12.0", req: withBody("FolderSync", "12.0", folderSyncBody(t)), code: 400},
		{name: "version not offered, 2.5", req: withBody("FolderSync", "2.5", folderSyncBody(t)), code: 400},
		{name: "version garbage", req: withBody("FolderSync", "x", folderSyncBody(t)), code: 400},
		{name: "no version header", req: withBody("FolderSync", "", folderSyncBody(t)), code: 400},
		{name: "no Cmd", req: withQuery("14.1", "User=jane&DeviceId=d&DeviceType=t"), code: 400},
		{name: "unknown Cmd 14.1", req: withQuery("14.1", "Cmd=Frobnicate&DeviceId=d&DeviceType=t"), code: 400},
		{name: "no DeviceId 12.1", req: withQuery("12.1", "Cmd=FolderSync&DeviceType=t"), code: 400},
		{name: "no DeviceId 14.1", req: withQuery("14.1", "Cmd=FolderSync&DeviceType=t"), code: 200, status: "108"},
		{name: "no DeviceType 12.1", req: withQuery("12.1", "Cmd=FolderSync&DeviceId=d"), code: 400},
		{name: "no DeviceType 16.1", req: withQuery("16.1", "Cmd=FolderSync&DeviceId=d"), code: 200, status: "109"},
		{name: "not implemented 12.1", req: withBody("Search", "12.1", nil), code: 501},
		{name: "not implemented 14.1", req: withBody("Search", "14.1", nil), code: 200, status: "137",
			root: wbxml.SearchSearch, statTag: wbxml.SearchStatus},
		{name: "bad WBXML 12.1", req: withBody("FolderSync", "12.1", bad), code: 400},
		{name: "bad WBXML 14.1", req: withBody("FolderSync", "14.1", bad), code: 200, status: "102"},
		{name: "wrong root 12.1", req: withBody("FolderSync", "12.1", wrongRoot), code: 400},
		{name: "wrong root 16.1", req: withBody("FolderSync", "16.1", wrongRoot), code: 200, status: "103"},
		{name: "bad WBXML, command without top-level Status", req: withBody("MeetingResponse", "14.1", bad), code: 400},
		{name: "backend down 12.1", req: withBody("Ping", "12.1", nil), code: 503},
		{name: "backend down 14.1", req: withBody("Ping", "14.1", nil), code: 200, status: "111",
			root: wbxml.PingPing, statTag: wbxml.PingStatus},
		{name: "server error 12.1", req: withBody("Sync", "12.1", nil), code: 500},
		{name: "server error 14.1", req: withBody("Sync", "14.1", nil), code: 200, status: "110",
			root: wbxml.AirSyncSync, statTag: wbxml.AirSyncStatus},
		{name: "other user in query 14.1", req: withQuery("14.1", "Cmd=FolderSync&User=bob&DeviceId=d&DeviceType=t"), code: 200, status: "130"},
		{name: "other user in query 12.1", req: withQuery("12.1", "Cmd=FolderSync&User=bob&DeviceId=d&DeviceType=t"), code: 403},
		{name: "user without domain matches", req: withQuery("14.1", "Cmd=FolderSync&User=JANE&DeviceId=d&DeviceType=t"), code: 200, status: "1"},
		{name: "DOMAIN\\user matches", req: withQuery("14.1", "Cmd=FolderSync&User=EX%5Cjane%40example.com&DeviceId=d&DeviceType=t"), code: 200, status: "1"},
	})
	w := e.do(withBody("Ping", "12.1", nil)())
	if w.Header().Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
}

func TestBase64Request(t *testing.T) {
	e := newEnv(t)
	var got *Request
	e.srv.Handle("FolderSync", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		got = req
		return folderSyncOK(ctx, req, body)
	})
	q := b64Query{version: 141, code: 9, locale: 0x409, deviceID: []byte{0xde, 0xad, 0xbe, 0xef}, policyKey: key(42), deviceType: "WP8"}
	r := post("FolderSync", "", folderSyncBody(t))
	r.URL.RawQuery = q.String()
	r.Header.Del("MS-ASProtocolVersion")
	w := e.do(r)
	if w.Code != 200 || got == nil {
		t.Fatalf("code %d", w.Code)
	}
	if got.Command != "FolderSync" || got.DeviceID != "deadbeef" || got.Version != "14.1" || got.PolicyKey != 42 ||
		got.User != testUser || got.DeviceType != "WP8" || got.RemoteAddr != "192.0.2.7:50123" || got.UserAgent == "" {
		t.Errorf("request %+v", got)
	}
	if got.Header.Get("Authorization") != "" {
		t.Error("handler sees the Authorization header")
	}
}

func TestResponseEncoding(t *testing.T) {
	e := newEnv(t)
	e.srv.Handle("FolderSync", folderSyncOK)
	e.srv.Handle("Sync", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		return Response{}, nil // nothing changed: the empty Sync response
	})
	for _, gz := range []bool{false, true} {
		r := post("Sync", "14.1", nil)
		if gz {
			r.Header.Set("Accept-Encoding", "gzip, deflate")
		}
		w := e.do(r)
		h := w.Header()
		if w.Code != 200 || w.Body.Len() != 0 || h.Get("Content-Length") != "0" || h.Get("Content-Encoding") != "" ||
			h.Get("Content-Type") != ContentTypeWBXML || h.Get("MS-Server-ActiveSync") == "" || h.Get("Cache-Control") != "private" {
			t.Errorf("empty response (gzip %v): %d %v %q", gz, w.Code, h, w.Body.Bytes())
		}

		r = post("FolderSync", "14.1", folderSyncBody(t))
		if gz {
			r.Header.Set("Accept-Encoding", "gzip")
		}
		w = e.do(r)
		h = w.Header()
		if (h.Get("Content-Encoding") == "gzip") != gz || h.Get("Content-Length") != fmt.Sprint(w.Body.Len()) {
			t.Errorf("gzip %v: headers %v, body %d bytes", gz, h, w.Body.Len())
		}
		if s := statusOf(t, w, wbxml.FolderHierarchyFolderSync, wbxml.FolderHierarchyStatus); s != "1" {
			t.Errorf("status %q", s)
		}
	}
}

func TestAcceptsGzip(t *testing.T) {
	for v, want := range map[string]bool{
		"": false, "gzip": true, "GZIP": true, "deflate, gzip;q=0.5": true, "gzip;q=0": false,
		"*": true, "*;q=0": false, "identity": false, "br, *": true, "gzip;q=0, *": false,
	} {
		if got := acceptsGzip(http.Header{"Accept-Encoding": {v}}); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}

// failReader fails the test if the body is read.
type failReader struct{ t *testing.T }

func (f failReader) Read(p []byte) (int, error) {
	f.t.Error("body read although Content-Length exceeds the limit")
	return 0, io.EOF
}

func TestBodyLimits(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 1000 })
	var gotBody *wbxml.Element
	e.srv.Handle("FolderSync", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		gotBody = body
		return folderSyncOK(ctx, req, body)
	})

	r := post("FolderSync", "14.1", nil)
	r.Body = io.NopCloser(failReader{t})
	r.ContentLength = 5000
	if w := e.do(r); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("declared length: %d", w.Code)
	}

	big := mustMarshal(t, wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchySyncKey, strings.Repeat("1", 2000))))
	r = post("FolderSync", "14.1", big)
	r.ContentLength = -1 // chunked
	if w := e.do(r); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked: %d", w.Code)
	}

	var zb bytes.Buffer
	zw := gzip.NewWriter(&zb)
	zw.Write(big)
	zw.Close()
	r = post("FolderSync", "14.1", zb.Bytes())
	r.Header.Set("Content-Encoding", "gzip")
	if w := e.do(r); w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("gzip expanding beyond the limit: %d (compressed %d bytes)", w.Code, zb.Len())
	}

	zb.Reset()
	zw = gzip.NewWriter(&zb)
	zw.Write(folderSyncBody(t))
	zw.Close()
	r = post("FolderSync", "14.1", zb.Bytes())
	r.Header.Set("Content-Encoding", "gzip")
	if w := e.do(r); w.Code != 200 || gotBody.ChildText(wbxml.FolderHierarchySyncKey) != "0" {
		t.Errorf("gzip request body: %d", w.Code)
	}

	r = post("FolderSync", "14.1", []byte("not gzip"))
	r.Header.Set("Content-Encoding", "gzip")
	w := e.do(r)
	if w.Code != 200 || statusOf(t, w, wbxml.FolderHierarchyFolderSync, wbxml.FolderHierarchyStatus) != "101" {
		t.Errorf("broken gzip: %d", w.Code)
	}
	r = post("FolderSync", "14.1", folderSyncBody(t))
	r.Header.Set("Content-Encoding", "br")
	if w := e.do(r); w.Code != 200 || statusOf(t, w, wbxml.FolderHierarchyFolderSync, wbxml.FolderHierarchyStatus) != "101" {
		t.Errorf("brotli: %d", w.Code)
	}
	r = post("FolderSync", "12.1", folderSyncBody(t))
	r.Header.Set("Content-Encoding", "br")
	if w := e.do(r); w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("brotli 12.1: %d", w.Code)
	}
}

func TestStreamedBody(t *testing.T) {
	e := newEnv(t)
	payload := bytes.Repeat([]byte("x"), spoolMemory+10)
	fail := false
	e.srv.Handle("ItemOperations", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		return Response{ContentType: ContentTypeMultipart, Body: func(w io.Writer) error {
			if _, err := w.Write(payload); err != nil {
				return err
			}
			if fail {
				return errors.New("imap fetch broke mid-way")
			}
			return nil
		}}, nil
	})
	w := e.do(post("ItemOperations", "14.1", nil))
	if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), payload) || w.Header().Get("Content-Type") != ContentTypeMultipart {
		t.Errorf("streamed: %d, %d bytes, %q", w.Code, w.Body.Len(), w.Header().Get("Content-Type"))
	}
	fail = true
	w = e.do(post("ItemOperations", "14.1", nil))
	if w.Code != 200 || statusOf(t, w, wbxml.ItemOperationsItemOperations, wbxml.ItemOperationsStatus) != "110" {
		t.Errorf("failed stream: %d, %d bytes", w.Code, w.Body.Len())
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t)
	e.srv.Handle("FolderSync", folderSyncOK)
	e.do(post("FolderSync", "14.1", folderSyncBody(t)))
	r := post("FolderSync", "14.1", folderSyncBody(t))
	r.Header.Set("Authorization", basic(testUser, "wrong"))
	e.do(r)
	mfs, err := e.srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetName() {
			case "easgate_eas_requests_total":
				found[fmt.Sprintf("%s/%s/%s", labels["command"], labels["code"], labels["status"])] = m.GetCounter().GetValue() == 1
			case "easgate_eas_auth_failures_total":
				found["auth_failures"] = m.GetCounter().GetValue() == 1
			case "easgate_eas_request_duration_seconds":
				found["duration/"+labels["command"]] = m.GetHistogram().GetSampleCount() == 2
			case "easgate_eas_requests_in_flight":
				found["in_flight"] = m.GetGauge().GetValue() == 0
			}
		}
	}
	for _, k := range []string{"FolderSync/200/1", "FolderSync/401/0", "auth_failures", "duration/FolderSync", "in_flight"} {
		if !found[k] {
			t.Errorf("metric %s missing or wrong; have %v", k, found)
		}
	}
}

func TestDeviceCollector(t *testing.T) {
	c := NewDeviceCollector(func(ctx context.Context) (map[string]int, error) {
		return map[string]int{"allowed": 3, "blocked": 1}, nil
	}, time.Second, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			got[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	if fmt.Sprint(got) != "map[easgate_devices/allowed:3 easgate_devices/blocked:1]" {
		t.Errorf("gathered %v", got)
	}
}

func TestRawMIMEBody(t *testing.T) {
	e := newEnv(t)
	var got *Request
	var gotBody *wbxml.Element
	e.srv.Handle("SendMail", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		got, gotBody = req, body
		return Response{}, nil
	})
	mime := []byte("From: jane@example.com\r\nTo: bob@example.org\r\nSubject: hi\r\n\r\nhello\r\n")
	r := post("SendMail", "12.1", mime)
	r.URL.RawQuery += "&SaveInSent=T"
	r.Header.Set("Content-Type", "message/rfc822")
	if w := e.do(r); w.Code != 200 || w.Body.Len() != 0 {
		t.Fatalf("code %d", w.Code)
	}
	if gotBody != nil || !bytes.Equal(got.Raw, mime) || !got.SaveInSent || got.ContentType != "message/rfc822" {
		t.Errorf("handler got body %v, raw %q, SaveInSent %v, type %q", gotBody, got.Raw, got.SaveInSent, got.ContentType)
	}
}

func TestUnauthenticatedLargeBody(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxBodyBytes = 10 })
	e.srv.Handle("FolderSync", folderSyncOK)
	r := post("FolderSync", "14.1", nil)
	r.Body = io.NopCloser(failReader{t})
	r.ContentLength = 5000
	r.Header.Del("Authorization")
	if w := e.do(r); w.Code != http.StatusUnauthorized {
		t.Errorf("code %d, want 401 before any size check", w.Code)
	}
}
