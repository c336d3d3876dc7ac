package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/devices/boltstore"
)

const testToken = "0123456789abcdef0123456789abcdef"

var fixedNow = time.Date(2026, 11, 28, 6, 0, 0, 0, time.UTC)

// storeMakers are the device stores every API test runs over; redis_test.go
// adds the Redis one.
var storeMakers = map[string]func(t *testing.T) devices.Store{
	"bolt": func(t *testing.T) devices.Store {
		s, err := boltstore.Open(filepath.Join(t.TempDir(), "devices.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

// forEachStore runs fn once per store kind.
func forEachStore(t *testing.T, fn func(t *testing.T, s devices.Store)) {
	for name, mk := range storeMakers {
		t.Run(name, func(t *testing.T) { fn(t, mk(t)) })
	}
}

// fixture is an API over one store, logging JSON into a buffer.
type fixture struct {
	api   *API
	store devices.Store
	log   *bytes.Buffer
}

func newFixture(t *testing.T, s devices.Store) *fixture {
	t.Helper()
	var buf bytes.Buffer
	api, err := New(Options{
		Store:   s,
		Token:   testToken,
		Logger:  slog.New(slog.NewJSONHandler(&buf, nil)),
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "easgate_test 1\n") }),
		Now:     func() time.Time { return fixedNow },
	})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{api: api, store: s, log: &buf}
}

// do sends one request with the right token (or with auth, when not "")
// and returns the status and body.
func (f *fixture) do(t *testing.T, method, path, body string, auth ...string) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	req.RemoteAddr = "192.0.2.7:4711"
	if len(auth) > 0 {
		if auth[0] != "" {
			req.Header.Set("Authorization", auth[0])
		}
	} else {
		req.Header.Set("Authorization", "Bearer "+testToken)
	}
	rec := httptest.NewRecorder()
	f.api.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); rec.Code != http.StatusNoContent && !strings.HasPrefix(path, "/metrics") && ct != "application/json" {
		t.Errorf("%s %s: Content-Type %q, want application/json", method, path, ct)
	}
	return rec.Code, rec.Body.Bytes()
}

func (f *fixture) seed(t *testing.T, user, id, version string) {
	t.Helper()
	_, err := f.store.UpsertDevice(context.Background(), user, id, func(d *devices.Device) error {
		d.Type = "iPhone"
		d.ProtocolVersion = version
		d.UserAgent = "Apple-iPhone15C2/2201.108"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) device(t *testing.T, user, id string) *devices.Device {
	t.Helper()
	d, err := f.store.GetDevice(context.Background(), user, id)
	if err != nil {
		t.Fatalf("GetDevice(%s, %s): %v", user, id, err)
	}
	return d
}

func errorText(t *testing.T, body []byte) string {
	t.Helper()
	var e ErrorBody
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("body %q is not an error document (%v)", body, err)
	}
	return e.Error
}

func TestNewRefusesMissingOrShortToken(t *testing.T) {
	s := storeMakers["bolt"](t)
	for _, tok := range []string{"", "short", strings.Repeat("x", MinTokenLength-1)} {
		if _, err := New(Options{Store: s, Token: tok}); !errors.Is(err, ErrNoToken) {
			t.Errorf("New(token %q) = %v, want ErrNoToken", tok, err)
		}
	}
	if _, err := New(Options{Token: testToken}); !errors.Is(err, ErrConfig) {
		t.Errorf("New without store = %v, want ErrConfig", err)
	}
	if _, err := New(Options{Store: s, Token: strings.Repeat("x", MinTokenLength)}); err != nil {
		t.Errorf("New with a %d-byte token: %v", MinTokenLength, err)
	}
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t, storeMakers["bolt"](t))
	tests := []struct {
		name, auth string
		want       int
	}{
		{"none", "", http.StatusUnauthorized},
		{"wrong token", "Bearer " + strings.Repeat("z", len(testToken)), http.StatusUnauthorized},
		{"prefix of the token", "Bearer " + testToken[:20], http.StatusUnauthorized},
		{"token plus more", "Bearer " + testToken + "x", http.StatusUnauthorized},
		{"basic scheme", "Basic " + testToken, http.StatusUnauthorized},
		{"empty bearer", "Bearer ", http.StatusUnauthorized},
		{"right", "Bearer " + testToken, http.StatusOK},
		{"scheme case-insensitive", "bearer " + testToken, http.StatusOK},
	}
	for _, tc := range tests {
		for _, path := range []string{"/api/v1/devices", "/metrics"} {
			code, body := f.do(t, http.MethodGet, path, "", tc.auth)
			if code != tc.want {
				t.Errorf("%s: GET %s = %d %s, want %d", tc.name, path, code, body, tc.want)
			}
			if code == http.StatusUnauthorized {
				errorText(t, body)
			}
		}
	}
	// A mutating call without a token changes nothing.
	f.seed(t, "alice", "dev1", "14.1")
	if code, _ := f.do(t, http.MethodPost, "/api/v1/devices/alice/dev1/block", "", ""); code != http.StatusUnauthorized {
		t.Errorf("block without token = %d", code)
	}
	if d := f.device(t, "alice", "dev1"); d.Access != devices.AccessAllowed {
		t.Errorf("device access after refused block = %v", d.Access)
	}
	if code, _ := f.do(t, http.MethodDelete, "/api/v1/devices/alice/dev1", "", "Bearer nope"); code != http.StatusUnauthorized {
		t.Errorf("delete with wrong token = %d", code)
	}
	f.device(t, "alice", "dev1")
}

func TestHealthz(t *testing.T) {
	f := newFixture(t, storeMakers["bolt"](t))
	code, body := f.do(t, http.MethodGet, "/healthz", "", "")
	if code != http.StatusOK || !bytes.Contains(body, []byte(`"status": "ok"`)) {
		t.Errorf("healthz = %d %s", code, body)
	}
	f.api.health = func(context.Context) error { return errors.New("redis: connection refused") }
	code, body = f.do(t, http.MethodGet, "/healthz", "", "")
	if code != http.StatusServiceUnavailable || bytes.Contains(body, []byte("refused")) {
		t.Errorf("failing healthz = %d %s (want 503 without the cause)", code, body)
	}
}

func TestMetricsServed(t *testing.T) {
	f := newFixture(t, storeMakers["bolt"](t))
	code, body := f.do(t, http.MethodGet, "/metrics", "")
	if code != http.StatusOK || string(body) != "easgate_test 1\n" {
		t.Errorf("metrics = %d %q", code, body)
	}
}

func TestListAndGet(t *testing.T) {
	forEachStore(t, func(t *testing.T, s devices.Store) {
		f := newFixture(t, s)
		code, body := f.do(t, http.MethodGet, "/api/v1/devices", "")
		if code != http.StatusOK || !bytes.Contains(body, []byte(`"devices": []`)) {
			t.Fatalf("empty list = %d %s", code, body)
		}
		f.seed(t, "bob", "ApplB", "16.1")
		f.seed(t, "alice", "ApplZ", "14.1")
		f.seed(t, "alice", "android1", "14.1")
		f.seed(t, `CORP\carol`, "c1", "16.1")

		var list DeviceList
		code, body = f.do(t, http.MethodGet, "/api/v1/devices", "")
		if code != http.StatusOK {
			t.Fatalf("list = %d %s", code, body)
		}
		if err := json.Unmarshal(body, &list); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, d := range list.Devices {
			got = append(got, d.User+"/"+d.ID)
		}
		want := []string{`CORP\carol/c1`, "alice/android1", "alice/applz", "bob/applb"}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("list = %v, want %v", got, want)
		}

		code, body = f.do(t, http.MethodGet, "/api/v1/devices?user=alice", "")
		list = DeviceList{}
		if err := json.Unmarshal(body, &list); err != nil || code != http.StatusOK || len(list.Devices) != 2 {
			t.Errorf("list ?user=alice = %d %s", code, body)
		}

		// One device, with its sync collections; the id is case-insensitive.
		err := s.PutSyncState(context.Background(), "alice", "applz", devices.HierarchyCollection, nil, &devices.SyncState{Key: 7, Data: []byte("h")})
		if err != nil {
			t.Fatal(err)
		}
		var det struct {
			devices.Device
			SyncCollections []string `json:"syncCollections"`
		}
		code, body = f.do(t, http.MethodGet, "/api/v1/devices/alice/APPLZ", "")
		if code != http.StatusOK {
			t.Fatalf("get = %d %s", code, body)
		}
		if err := json.Unmarshal(body, &det); err != nil {
			t.Fatal(err)
		}
		if det.ID != "applz" || det.ProtocolVersion != "14.1" || det.Type != "iPhone" || len(det.SyncCollections) != 1 || det.SyncCollections[0] != "" {
			t.Errorf("get = %s", body)
		}

		// A user name with a backslash, escaped in the path.
		code, body = f.do(t, http.MethodGet, "/api/v1/devices/CORP%5Ccarol/c1", "")
		if code != http.StatusOK || !bytes.Contains(body, []byte(`"syncCollections": []`)) {
			t.Errorf("get CORP\\carol = %d %s", code, body)
		}

		code, body = f.do(t, http.MethodGet, "/api/v1/devices/alice/nope", "")
		if code != http.StatusNotFound || errorText(t, body) != "unknown device" {
			t.Errorf("get unknown = %d %s", code, body)
		}
		code, body = f.do(t, http.MethodGet, "/api/v1/nothing", "")
		if code != http.StatusNotFound {
			t.Errorf("unknown endpoint = %d %s", code, body)
		}
		errorText(t, body)
	})
}

// auditLine finds the audit record of action in the log.
func auditLine(t *testing.T, log *bytes.Buffer, action string) map[string]any {
	t.Helper()
	for _, line := range bytes.Split(log.Bytes(), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(line, &m) == nil && m["msg"] == "admin action" && m["action"] == action {
			return m
		}
	}
	t.Fatalf("no audit line for %q in log:\n%s", action, log)
	return nil
}

func TestActions(t *testing.T) {
	forEachStore(t, func(t *testing.T, s devices.Store) {
		f := newFixture(t, s)
		f.seed(t, "alice", "dev141", "14.1")
		f.seed(t, "alice", "dev161", "16.1")

		// Block, with a reason, then allow.
		code, body := f.do(t, http.MethodPost, "/api/v1/devices/alice/dev141/block", `{"reason":"lost on a train"}`)
		if code != http.StatusOK {
			t.Fatalf("block = %d %s", code, body)
		}
		if d := f.device(t, "alice", "dev141"); d.Access != devices.AccessBlocked || d.AccessReason != "lost on a train" {
			t.Errorf("after block: access %v reason %q", d.Access, d.AccessReason)
		}
		if !bytes.Contains(body, []byte(`"access": "blocked"`)) {
			t.Errorf("block response does not show the new state: %s", body)
		}
		m := auditLine(t, f.log, "block")
		if m["user"] != "alice" || m["device"] != "dev141" || m["result"] != "ok" || m["remote"] != "192.0.2.7:4711" {
			t.Errorf("block audit line = %v", m)
		}
		if code, body = f.do(t, http.MethodPost, "/api/v1/devices/alice/dev141/allow", ""); code != http.StatusOK {
			t.Fatalf("allow = %d %s", code, body)
		}
		if d := f.device(t, "alice", "dev141"); d.Access != devices.AccessApproved || d.AccessReason != "" {
			t.Errorf("after allow: access %v reason %q", d.Access, d.AccessReason)
		}

		// Account-only wipe needs 16.1.
		code, body = f.do(t, http.MethodPost, "/api/v1/devices/alice/dev141/account-wipe", "")
		if code != http.StatusConflict || !strings.Contains(errorText(t, body), "16.1") {
			t.Errorf("account-wipe on 14.1 = %d %s", code, body)
		}
		if d := f.device(t, "alice", "dev141"); d.Wipe != devices.WipeNone {
			t.Errorf("refused account-wipe changed wipe state to %v", d.Wipe)
		}
		if m := auditLine(t, f.log, "account-wipe"); m["result"] != "refused" {
			t.Errorf("refused account-wipe audit = %v", m)
		}
		code, body = f.do(t, http.MethodPost, "/api/v1/devices/alice/dev161/account-wipe", "")
		if code != http.StatusOK {
			t.Fatalf("account-wipe on 16.1 = %d %s", code, body)
		}
		if d := f.device(t, "alice", "dev161"); d.Wipe != devices.WipePendingAccountOnly || !d.WipeRequested.Equal(fixedNow) {
			t.Errorf("after account-wipe: %v at %v", d.Wipe, d.WipeRequested)
		}

		// Full wipe; asking twice is harmless.
		for range 2 {
			if code, body = f.do(t, http.MethodPost, "/api/v1/devices/alice/dev141/wipe", ""); code != http.StatusOK {
				t.Fatalf("wipe = %d %s", code, body)
			}
		}
		d := f.device(t, "alice", "dev141")
		if d.Wipe != devices.WipePending || !d.WipeRequested.Equal(fixedNow) {
			t.Errorf("after wipe: %v at %v", d.Wipe, d.WipeRequested)
		}
		// A full wipe replaces a pending account-only one.
		if code, _ = f.do(t, http.MethodPost, "/api/v1/devices/alice/dev161/wipe", ""); code != http.StatusOK {
			t.Errorf("wipe over account-wipe = %d", code)
		}
		if d := f.device(t, "alice", "dev161"); d.Wipe != devices.WipePending {
			t.Errorf("wipe over account-wipe: %v", d.Wipe)
		}

		// Once acknowledged, another wipe is a conflict.
		if _, err := s.UpdateDevice(context.Background(), "alice", "dev141", func(d *devices.Device) error {
			d.Wipe, d.WipeStatus = devices.WipeAcknowledged, 1
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		code, body = f.do(t, http.MethodPost, "/api/v1/devices/alice/dev141/wipe", "")
		if code != http.StatusConflict {
			t.Errorf("wipe after acknowledgement = %d %s", code, body)
		}

		// Errors.
		for _, tc := range []struct {
			method, path, body string
			want               int
		}{
			{http.MethodPost, "/api/v1/devices/alice/dev141/explode", "", http.StatusBadRequest},
			{http.MethodPost, "/api/v1/devices/alice/ghost/block", "", http.StatusNotFound},
			{http.MethodPost, "/api/v1/devices/alice/ghost/wipe", "", http.StatusNotFound},
			{http.MethodPost, "/api/v1/devices/alice/dev141/block", `{"reason":`, http.StatusBadRequest},
			{http.MethodPost, "/api/v1/devices/alice/dev141/block", `{"why":"x"}`, http.StatusBadRequest},
			{http.MethodPut, "/api/v1/devices/alice/dev141", "", http.StatusMethodNotAllowed},
		} {
			code, body := f.do(t, tc.method, tc.path, tc.body)
			if code != tc.want {
				t.Errorf("%s %s %q = %d %s, want %d", tc.method, tc.path, tc.body, code, body, tc.want)
			}
			errorText(t, body)
		}
		if _, err := s.GetDevice(context.Background(), "alice", "ghost"); !errors.Is(err, devices.ErrNotFound) {
			t.Errorf("an action on an unknown device created it: %v", err)
		}
		if m := auditLine(t, f.log, "explode"); m["result"] != "bad request" {
			t.Errorf("bad action audit = %v", m)
		}
	})
}

func TestDelete(t *testing.T) {
	forEachStore(t, func(t *testing.T, s devices.Store) {
		f := newFixture(t, s)
		ctx := context.Background()
		f.seed(t, "alice", "dev1", "14.1")
		if err := s.PutSyncState(ctx, "alice", "dev1", "INBOX", nil, &devices.SyncState{Key: 3, Data: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCachedRequest(ctx, "alice", "dev1", devices.RequestPing, []byte{3, 1, 106, 0}); err != nil {
			t.Fatal(err)
		}
		code, body := f.do(t, http.MethodDelete, "/api/v1/devices/alice/DEV1", "")
		if code != http.StatusNoContent || len(body) != 0 {
			t.Fatalf("delete = %d %s", code, body)
		}
		if _, err := s.GetDevice(ctx, "alice", "dev1"); !errors.Is(err, devices.ErrNotFound) {
			t.Errorf("device after delete: %v", err)
		}
		if c, err := s.SyncCollections(ctx, "alice", "dev1"); err != nil || len(c) != 0 {
			t.Errorf("sync state after delete: %v %v", c, err)
		}
		if _, err := s.GetCachedRequest(ctx, "alice", "dev1", devices.RequestPing); !errors.Is(err, devices.ErrNotFound) {
			t.Errorf("cached request after delete: %v", err)
		}
		if m := auditLine(t, f.log, "delete"); m["result"] != "ok" || m["device"] != "dev1" {
			t.Errorf("delete audit = %v", m)
		}
		code, body = f.do(t, http.MethodDelete, "/api/v1/devices/alice/dev1", "")
		if code != http.StatusNotFound {
			t.Errorf("second delete = %d %s", code, body)
		}
	})
}
