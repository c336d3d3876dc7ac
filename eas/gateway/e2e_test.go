package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/easgate/easgate/backend/testsrv"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/devices/redistest"
	"github.com/easgate/easgate/eas"
	"github.com/easgate/easgate/eas/easclient"
	"github.com/easgate/easgate/eas/gateway"
	"github.com/easgate/easgate/wbxml"
	"github.com/easgate/easgate/wbxml/wbxmltest"
)

// The end-to-end tests run the whole gateway as `easgate serve` would, on
// free loopback ports, against a private Dovecot (testsrv) and a private
// redis-server (redistest), and talk to it over HTTP with easclient. After
// each exchange they read what Redis really holds with a raw client.

const adminToken = "e2e-admin-token-0123456789abcdef"

// publicURL is the EAS URL the test gateways hand out in Autodiscover.
const publicURL = "https://mail.example.test/Microsoft-Server-ActiveSync"

// sleeper records the waits the wrong-password slow-down asks for instead
// of waiting.
type sleeper struct {
	mu     sync.Mutex
	delays []time.Duration
}

func (s *sleeper) Sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	s.delays = append(s.delays, d)
	s.mu.Unlock()
	return nil
}

func (s *sleeper) taken() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.delays)
}

// env is one running gateway with its mail server and Redis.
type env struct {
	gw         *gateway.Gateway
	dovecot    *testsrv.Dovecot
	rdb        *redis.Client // raw client on the gateway's Redis
	easURL     string
	adminURL   string
	policyFile string
	sleeps     *sleeper
}

// throttle is the slow-down of every test gateway: two free failures, then
// 1s, 2s, 4s, 8s (asked of the sleeper, never waited).
var throttle = eas.Throttle{Free: 2, Base: time.Second, Max: 8 * time.Second, Window: time.Hour}

// startEnv starts Dovecot, Redis and the gateway, with policyTOML as the
// policy file ("" for the built-in default).
func startEnv(t *testing.T, policyTOML string) *env {
	t.Helper()
	e := &env{sleeps: &sleeper{}}
	e.dovecot = testsrv.StartDovecot(t, testsrv.DefaultUsers())
	rs := redistest.Start(t)
	e.rdb = redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { e.rdb.Close() })
	if policyTOML != "" {
		e.policyFile = filepath.Join(t.TempDir(), "policy.toml")
		if err := os.WriteFile(e.policyFile, []byte(policyTOML), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	gw, err := gateway.New(gateway.Config{
		Listen:      "127.0.0.1:0",
		AdminListen: "127.0.0.1:0",
		AdminToken:  adminToken,
		IMAP:        e.dovecot.Addr,
		Redis:       "redis://" + rs.Addr + "/0",
		PolicyFile:  e.policyFile,
		PublicURL:   publicURL,
		Sleep:       e.sleeps.Sleep,
		Throttle:    throttle,
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if err := gw.Listen(); err != nil {
		t.Fatal(err)
	}
	e.gw = gw
	e.easURL, e.adminURL = "http://"+gw.Addr(), "http://"+gw.AdminAddr()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Run: %v", err)
		}
	})
	return e
}

// client returns an easclient for a DefaultUsers user.
func (e *env) client(user, deviceID, version string) *easclient.Client {
	return &easclient.Client{
		BaseURL: e.easURL, User: user, Password: user + "pw",
		DeviceID: deviceID, DeviceType: "iPhone", Version: version, UserAgent: "Apple-iPhone15C2/2201.108",
	}
}

// redisDevice reads a device record straight from Redis.
func (e *env) redisDevice(t *testing.T, user, id string) *devices.Device {
	t.Helper()
	v, err := e.rdb.HGet(context.Background(), "eas:{"+user+"}:devices", strings.ToLower(id)).Result()
	if err != nil {
		t.Fatalf("HGET eas:{%s}:devices %s: %v", user, id, err)
	}
	var d devices.Device
	if err := json.Unmarshal([]byte(v), &d); err != nil {
		t.Fatalf("device record in Redis is not JSON: %v\n%s", err, v)
	}
	return &d
}

// admin sends an admin API request with the token (or with auth when
// given) and returns the status and body.
func (e *env) admin(t *testing.T, method, path string, auth ...string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.adminURL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(auth) > 0 {
		if auth[0] != "" {
			req.Header.Set("Authorization", auth[0])
		}
	} else {
		req.Header.Set("Authorization", "Bearer "+adminToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// checkWBXML checks a WBXML response body with libwbxml and, where the
// shared oracles are present, against Microsoft's schema for the response.
// An empty body passes.
func checkWBXML(t *testing.T, schema string, r *easclient.Response) {
	t.Helper()
	if len(r.Body) == 0 {
		return
	}
	wbxmltest.LibwbxmlDecode(t, r.Body)
	switch err := wbxmltest.CheckResponse(schema, r.Body); {
	case errors.Is(err, wbxmltest.ErrNoOracles):
		t.Logf("schema check of %s skipped: %v", schema, err)
	case err != nil:
		t.Error(err)
	}
}

// expectGate checks a refused request: its HTTP status and, when status
// is not 0, a body holding only the command's top-level Status.
func expectGate(t *testing.T, what, schema string, r *easclient.Response, httpStatus, status int) {
	t.Helper()
	if r.HTTPStatus != httpStatus {
		t.Errorf("%s: HTTP %d, want %d (body %x)", what, r.HTTPStatus, httpStatus, r.Body)
	}
	if status == 0 {
		if len(r.Body) != 0 {
			t.Errorf("%s: body %x, want none", what, r.Body)
		}
		return
	}
	if got := r.Status(); got != status || r.Tree == nil || len(r.Tree.Children) != 1 {
		t.Errorf("%s: Status %d in %v, want only Status %d", what, got, r.Tree, status)
	}
	checkWBXML(t, schema, r)
}

// provision runs both Provision phases and checks them.
func provision(t *testing.T, c *easclient.Client, info *easclient.DeviceInformation) *easclient.ProvisionResult {
	t.Helper()
	res, err := c.Provision(context.Background(), info)
	if err != nil {
		t.Fatal(err)
	}
	checkWBXML(t, "ProvisionResponse", res.Phase1)
	if res.Phase2 == nil || res.PolicyKey == 0 {
		t.Fatalf("Provision as %s %s: no final key; phase 1 HTTP %d status %d", c.Version, c.DeviceID, res.Phase1.HTTPStatus, res.Phase1.Status())
	}
	checkWBXML(t, "ProvisionResponse", res.Phase2)
	if res.TemporaryKey == 0 || res.TemporaryKey == res.PolicyKey {
		t.Errorf("temporary key %d, final key %d", res.TemporaryKey, res.PolicyKey)
	}
	return res
}

// userInfo sends Settings UserInformation Get, which needs a valid key.
func userInfo(t *testing.T, c *easclient.Client) *easclient.Response {
	t.Helper()
	r, err := c.GetUserInformation(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestE2EOptionsAndAuth(t *testing.T) {
	e := startEnv(t, "")
	ctx := context.Background()
	anon := &easclient.Client{BaseURL: e.easURL}
	r, err := anon.Options(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.HTTPStatus != http.StatusUnauthorized || len(r.Body) != 0 || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic ") {
		t.Errorf("anonymous OPTIONS = %d %v %q", r.HTTPStatus, r.Header, r.Body)
	}
	c := e.client("alice", "ApplAUTH01", "14.1")
	r, err = c.Options(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.HTTPStatus != http.StatusOK {
		t.Fatalf("OPTIONS = %d", r.HTTPStatus)
	}
	versions := strings.Split(r.Header.Get("MS-ASProtocolVersions"), ",")
	cmds := strings.Split(r.Header.Get("MS-ASProtocolCommands"), ",")
	for _, v := range []string{"12.1", "14.1", "16.1"} {
		if !slices.Contains(versions, v) {
			t.Errorf("MS-ASProtocolVersions %v lacks %s", versions, v)
		}
	}
	for _, cmd := range []string{"Provision", "Settings"} {
		if !slices.Contains(cmds, cmd) {
			t.Errorf("MS-ASProtocolCommands %v lacks %s", cmds, cmd)
		}
	}
	// Autodiscover: 401 without credentials, then the public URL.
	r, err = anon.Autodiscover(ctx, "alice@example.test")
	if err != nil || r.HTTPStatus != http.StatusUnauthorized {
		t.Errorf("anonymous Autodiscover = %v, %v", r, err)
	}
	r, err = c.Autodiscover(ctx, "alice@example.test")
	if err != nil {
		t.Fatal(err)
	}
	if r.HTTPStatus != http.StatusOK || !strings.Contains(string(r.Body), "<Url>"+publicURL+"</Url>") || !strings.Contains(string(r.Body), "MobileSync") {
		t.Errorf("Autodiscover = %d\n%s", r.HTTPStatus, r.Body)
	}

	// user@domain and DOMAIN\user forms of a wrong password are refused.
	for _, user := range []string{"alice", `CORP\alice`} {
		bad := &easclient.Client{BaseURL: e.easURL, User: user, Password: "nope", DeviceID: "x", DeviceType: "iPhone"}
		if r, err := bad.Options(ctx); err != nil || r.HTTPStatus != http.StatusUnauthorized {
			t.Errorf("OPTIONS as %s with a wrong password = %v, %v", user, r, err)
		}
	}
}

// TestE2EProvisionPerVersion walks the provisioning gate and both Provision
// phases in every version and both query forms, and checks what Redis holds
// afterwards.
func TestE2EProvisionPerVersion(t *testing.T) {
	e := startEnv(t, "")
	info := &easclient.DeviceInformation{Model: "iPhone15,2", IMEI: "356938035643809", FriendlyName: "Alice's iPhone", OS: "iOS 18.1",
		OSLanguage: "en", PhoneNumber: "+15555550123", MobileOperator: "Example Mobile"}
	tests := []struct {
		version string
		base64  bool
		info    bool // send DeviceInformation in Provision (14.1+)
		gzip    bool // accept gzip responses
	}{
		{"12.1", false, false, true},
		{"12.1", true, false, false},
		{"14.1", false, true, false},
		{"14.1", true, true, true},
		{"16.1", false, true, true},
		{"16.1", true, true, false},
	}
	for _, tc := range tests {
		form := "plain"
		if tc.base64 {
			form = "base64"
		}
		t.Run(tc.version+"/"+form, func(t *testing.T) {
			id := "Dev" + strings.ReplaceAll(tc.version, ".", "") + form
			c := e.client("alice", id, tc.version)
			c.Base64Query = tc.base64
			c.Gzip = tc.gzip
			inBody := tc.version != "12.1"
			want := func(status int) int {
				if inBody {
					return status
				}
				return 0
			}

			// No key: 449, plus Status 142 from 14.0. An empty body is
			// never gzipped (iOS would take it for data).
			r := userInfo(t, c)
			expectGate(t, "Settings without a key", "SettingsResponse", r, eas.StatusRetryProvision, want(eas.StatusDeviceNotProvisioned))
			if r.Gzipped != (tc.gzip && inBody) {
				t.Errorf("449 body of %d bytes gzipped: %v", len(r.Body), r.Gzipped)
			}

			var di *easclient.DeviceInformation
			if tc.info {
				di = info
			}
			res := provision(t, c, di)
			// DeviceInformation sent in Provision is answered with its own
			// Status 1 (the digest §3.1; iPhones on 16.1 need it).
			echo := res.Phase1.Tree.Child(wbxml.SettingsDeviceInformation)
			if tc.info && (echo == nil || echo.ChildText(wbxml.SettingsStatus) != "1") {
				t.Errorf("phase 1 does not answer DeviceInformation with Status 1: %v", echo)
			}
			if !tc.info && echo != nil {
				t.Errorf("phase 1 answers a DeviceInformation that was not sent")
			}
			if res.Phase1.Gzipped != tc.gzip || res.Phase2.Gzipped != tc.gzip {
				t.Errorf("Provision responses gzipped %v/%v, client accepts gzip: %v", res.Phase1.Gzipped, res.Phase2.Gzipped, tc.gzip)
			}

			r = userInfo(t, c)
			if r.HTTPStatus != http.StatusOK || r.Status() != 1 {
				t.Errorf("Settings with the final key = %d status %d", r.HTTPStatus, r.Status())
			}
			checkWBXML(t, "SettingsResponse", r)

			d := e.redisDevice(t, "alice", id)
			if d.PolicyKey != res.PolicyKey || d.PendingPolicyKey != 0 || d.PolicyStatus != 1 || d.ProtocolVersion != tc.version ||
				d.Type != "iPhone" || d.UserAgent != c.UserAgent || d.ID != strings.ToLower(id) {
				t.Errorf("Redis record after Provision: %+v", d)
			}
			if tc.info && (d.Info.Model != info.Model || d.Info.IMEI != info.IMEI || d.Info.PhoneNumber != info.PhoneNumber || d.Info.OS != info.OS) {
				t.Errorf("DeviceInformation in Redis: %+v", d.Info)
			}
			if !tc.info && d.Info != (devices.DeviceInfo{}) {
				t.Errorf("DeviceInformation stored though none was sent: %+v", d.Info)
			}

			// A stale key: one this device was never given.
			c.SetPolicyKey(res.PolicyKey ^ 0x5a5a5a5a)
			expectGate(t, "Settings with a wrong key", "SettingsResponse", userInfo(t, c), eas.StatusRetryProvision, want(eas.StatusInvalidPolicyKey))
			// The temporary key is no final key either.
			c.SetPolicyKey(res.TemporaryKey)
			expectGate(t, "Settings with the temporary key", "SettingsResponse", userInfo(t, c), eas.StatusRetryProvision, want(eas.StatusInvalidPolicyKey))
			// Key 0 is "none".
			c.SetPolicyKey(0)
			expectGate(t, "Settings with key 0", "SettingsResponse", userInfo(t, c), eas.StatusRetryProvision, want(eas.StatusDeviceNotProvisioned))
			// The stored key did not change through any of it.
			if d := e.redisDevice(t, "alice", id); d.PolicyKey != res.PolicyKey {
				t.Errorf("stored key changed to %d", d.PolicyKey)
			}
		})
	}
}

// TestE2EPolicyRefresh: after the policy changes (file edited, reloaded),
// an old key gets Status 143 and a new Provision fixes it.
func TestE2EPolicyRefresh(t *testing.T) {
	e := startEnv(t, "[policies.default]\nDevicePasswordEnabled = false\n")
	c := e.client("bob", "ApplREFRESH1", "14.1")
	res := provision(t, c, &easclient.DeviceInformation{Model: "iPhone14,7"})
	if r := userInfo(t, c); r.HTTPStatus != http.StatusOK {
		t.Fatalf("Settings before the change = %d", r.HTTPStatus)
	}
	if err := os.WriteFile(e.policyFile, []byte("[policies.default]\nDevicePasswordEnabled = true\nMinDevicePasswordLength = 6\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.gw.ReloadPolicy(); err != nil {
		t.Fatal(err)
	}
	expectGate(t, "Settings after a policy change", "SettingsResponse", userInfo(t, c), eas.StatusRetryProvision, eas.StatusPolicyRefresh)
	res2 := provision(t, c, nil)
	if res2.PolicyKey == res.PolicyKey {
		t.Errorf("re-provisioning kept key %d", res.PolicyKey)
	}
	pol := res2.Phase1.Tree.Child(wbxml.ProvisionPolicies).Child(wbxml.ProvisionPolicy)
	doc := pol.Child(wbxml.ProvisionData).Child(wbxml.ProvisionEASProvisionDoc)
	if doc.ChildText(wbxml.ProvisionDevicePasswordEnabled) != "1" || doc.ChildText(wbxml.ProvisionMinDevicePasswordLength) != "6" {
		t.Errorf("new policy document: %+v", doc)
	}
	if r := userInfo(t, c); r.HTTPStatus != http.StatusOK || r.Status() != 1 {
		t.Errorf("Settings after re-provisioning = %d status %d", r.HTTPStatus, r.Status())
	}
}

// wipeFlow drives a wipe from the admin API to the device's
// acknowledgement and checks that the device is refused afterwards.
func wipeFlow(t *testing.T, e *env, version, action string, accountOnly bool) {
	id := "ApplWIPE" + strings.ReplaceAll(version, ".", "") + action
	c := e.client("carol", id, version)
	provision(t, c, &easclient.DeviceInformation{Model: "iPhone15,2"})

	code, body := e.admin(t, http.MethodPost, "/api/v1/devices/carol/"+id+"/"+action)
	if code != http.StatusOK {
		t.Fatalf("admin %s = %d %s", action, code, body)
	}
	wantWipe := devices.WipePending
	if accountOnly {
		wantWipe = devices.WipePendingAccountOnly
	}
	if d := e.redisDevice(t, "carol", id); d.Wipe != wantWipe || d.WipeRequested.IsZero() {
		t.Fatalf("Redis after admin %s: wipe %v requested %v", action, d.Wipe, d.WipeRequested)
	}

	// Any command now sends the device to Provision: 449 and Status 140.
	expectGate(t, "Settings with a wipe pending", "SettingsResponse", userInfo(t, c), eas.StatusRetryProvision, eas.StatusRemoteWipeRequested)

	// Provision phase 1 carries the wipe directive.
	res, err := c.Provision(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	checkWBXML(t, "ProvisionResponse", res.Phase1)
	if res.Phase1.HTTPStatus != http.StatusOK || res.RemoteWipe == accountOnly || res.AccountOnlyRemoteWipe != accountOnly {
		t.Fatalf("Provision with a wipe pending: HTTP %d RemoteWipe %v AccountOnlyRemoteWipe %v", res.Phase1.HTTPStatus, res.RemoteWipe, res.AccountOnlyRemoteWipe)
	}

	// The device acknowledges.
	r, err := c.Do(context.Background(), "Provision", easclient.WipeAck(1, accountOnly))
	if err != nil {
		t.Fatal(err)
	}
	checkWBXML(t, "ProvisionResponse", r)
	if r.HTTPStatus != http.StatusOK || r.Status() != 1 {
		t.Errorf("wipe acknowledgement answered %d status %d", r.HTTPStatus, r.Status())
	}
	d := e.redisDevice(t, "carol", id)
	if d.Wipe != devices.WipeAcknowledged || d.WipeStatus != 1 || d.WipeAcknowledged.IsZero() {
		t.Errorf("Redis after the acknowledgement: wipe %v status %d at %v", d.Wipe, d.WipeStatus, d.WipeAcknowledged)
	}

	// From now on the device is refused, Provision included.
	expectGate(t, "Settings after the wipe", "SettingsResponse", userInfo(t, c), http.StatusOK, eas.StatusDeviceBlocked)
	r, err = c.Do(context.Background(), "Provision", easclient.ProvisionRequest(nil))
	if err != nil {
		t.Fatal(err)
	}
	expectGate(t, "Provision after the wipe", "ProvisionResponse", r, http.StatusOK, eas.StatusDeviceBlocked)

	// Another wipe is refused; deleting the device releases it.
	if code, body := e.admin(t, http.MethodPost, "/api/v1/devices/carol/"+id+"/wipe"); code != http.StatusConflict {
		t.Errorf("second wipe = %d %s", code, body)
	}
	if code, body := e.admin(t, http.MethodDelete, "/api/v1/devices/carol/"+id); code != http.StatusNoContent {
		t.Fatalf("delete = %d %s", code, body)
	}
	if n, err := e.rdb.HExists(context.Background(), "eas:{carol}:devices", strings.ToLower(id)).Result(); err != nil || n {
		t.Errorf("device still in Redis after delete: %v %v", n, err)
	}
	c.SetPolicyKey(0)
	provision(t, c, nil)
}

func TestE2EWipe(t *testing.T) {
	e := startEnv(t, "")
	for _, v := range []string{"14.1", "16.1"} {
		t.Run(v, func(t *testing.T) { wipeFlow(t, e, v, "wipe", false) })
	}
}

func TestE2EAccountOnlyWipe(t *testing.T) {
	e := startEnv(t, "")
	t.Run("16.1", func(t *testing.T) { wipeFlow(t, e, "16.1", "account-wipe", true) })
	t.Run("14.1 refused", func(t *testing.T) {
		c := e.client("carol", "ApplOLD141", "14.1")
		provision(t, c, nil)
		code, body := e.admin(t, http.MethodPost, "/api/v1/devices/carol/ApplOLD141/account-wipe")
		if code != http.StatusConflict || !strings.Contains(string(body), "16.1") {
			t.Errorf("account-wipe of a 14.1 device = %d %s", code, body)
		}
		if d := e.redisDevice(t, "carol", "ApplOLD141"); d.Wipe != devices.WipeNone {
			t.Errorf("wipe state after the refusal: %v", d.Wipe)
		}
		if r := userInfo(t, c); r.HTTPStatus != http.StatusOK {
			t.Errorf("device after a refused account-wipe: %d", r.HTTPStatus)
		}
	})
}

func TestE2EBlock(t *testing.T) {
	e := startEnv(t, "")
	for _, tc := range []struct {
		version          string
		httpCode, status int
	}{
		{"12.1", http.StatusForbidden, 0},
		{"14.1", http.StatusOK, eas.StatusDeviceBlocked},
		{"16.1", http.StatusOK, eas.StatusDeviceBlocked},
	} {
		t.Run(tc.version, func(t *testing.T) {
			id := "ApplBLOCK" + strings.ReplaceAll(tc.version, ".", "")
			c := e.client("alice", id, tc.version)
			provision(t, c, nil)
			if code, body := e.admin(t, http.MethodPost, "/api/v1/devices/alice/"+id+"/block"); code != http.StatusOK {
				t.Fatalf("block = %d %s", code, body)
			}
			if d := e.redisDevice(t, "alice", id); d.Access != devices.AccessBlocked || d.AccessReason == "" {
				t.Errorf("Redis after block: %v %q", d.Access, d.AccessReason)
			}
			expectGate(t, "Settings while blocked", "SettingsResponse", userInfo(t, c), tc.httpCode, tc.status)
			r, err := c.Do(context.Background(), "Provision", easclient.ProvisionRequest(nil))
			if err != nil {
				t.Fatal(err)
			}
			expectGate(t, "Provision while blocked", "ProvisionResponse", r, tc.httpCode, tc.status)

			if code, body := e.admin(t, http.MethodPost, "/api/v1/devices/alice/"+id+"/allow"); code != http.StatusOK {
				t.Fatalf("allow = %d %s", code, body)
			}
			if r := userInfo(t, c); r.HTTPStatus != http.StatusOK || r.Status() != 1 {
				t.Errorf("Settings after allow = %d status %d", r.HTTPStatus, r.Status())
			}
		})
	}
}

// TestE2EQuarantine: a policy rule quarantines carol's Android devices;
// from 14.0 they may still Provision (so the administrator learns the
// model) but nothing else.
func TestE2EQuarantine(t *testing.T) {
	e := startEnv(t, `[access]
default = "allow"

[[access.rules]]
name = "new androids wait"
user = "carol"
device_type = "Android*"
action = "quarantine"
`)
	c := e.client("carol", "androidc0ffee", "14.1")
	c.DeviceType = "Android"
	expectGate(t, "Settings while quarantined", "SettingsResponse", userInfo(t, c), http.StatusOK, eas.StatusDeviceBlocked)
	res, err := c.Provision(context.Background(), &easclient.DeviceInformation{Model: "SM-S921B", OS: "Android 15"})
	if err != nil {
		t.Fatal(err)
	}
	checkWBXML(t, "ProvisionResponse", res.Phase1)
	if res.Phase1.HTTPStatus != http.StatusOK || res.Phase1.Status() != 1 {
		t.Errorf("Provision while quarantined = %d status %d", res.Phase1.HTTPStatus, res.Phase1.Status())
	}
	if d := e.redisDevice(t, "carol", "androidc0ffee"); d.Info.Model != "SM-S921B" {
		t.Errorf("quarantined device's model not stored: %+v", d.Info)
	}
	expectGate(t, "Settings after Provision while quarantined", "SettingsResponse", userInfo(t, c), http.StatusOK, eas.StatusDeviceBlocked)

	// The administrator approves the device: the rule no longer applies.
	if code, body := e.admin(t, http.MethodPost, "/api/v1/devices/carol/androidc0ffee/allow"); code != http.StatusOK {
		t.Fatalf("allow = %d %s", code, body)
	}
	if d := e.redisDevice(t, "carol", "androidc0ffee"); d.Access != devices.AccessApproved {
		t.Errorf("Redis after allow: %v", d.Access)
	}
	if c.PolicyKey() == 0 {
		provision(t, c, nil)
	}
	if r := userInfo(t, c); r.HTTPStatus != http.StatusOK || r.Status() != 1 {
		t.Errorf("Settings after approval = %d status %d", r.HTTPStatus, r.Status())
	}

	// Another user's Android is not affected.
	a := e.client("alice", "androidbeef", "14.1")
	a.DeviceType = "Android"
	provision(t, a, nil)
	if r := userInfo(t, a); r.HTTPStatus != http.StatusOK {
		t.Errorf("alice's Android = %d", r.HTTPStatus)
	}
}

func TestE2EAdminAuth(t *testing.T) {
	e := startEnv(t, "")
	provision(t, e.client("alice", "ApplMETRICS", "14.1"), nil)
	for _, tc := range []struct {
		name, method, path, auth string
		want                     int
	}{
		{"list without token", http.MethodGet, "/api/v1/devices", "", http.StatusUnauthorized},
		{"list with a wrong token", http.MethodGet, "/api/v1/devices", "Bearer wrong-token-wrong-token-wrong", http.StatusUnauthorized},
		{"block without token", http.MethodPost, "/api/v1/devices/alice/ApplMETRICS/block", "", http.StatusUnauthorized},
		{"delete with a wrong token", http.MethodDelete, "/api/v1/devices/alice/ApplMETRICS", "Bearer " + adminToken + "x", http.StatusUnauthorized},
		{"metrics without token", http.MethodGet, "/metrics", "", http.StatusUnauthorized},
		{"healthz without token", http.MethodGet, "/healthz", "", http.StatusOK},
	} {
		code, body := e.admin(t, tc.method, tc.path, tc.auth)
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
	if d := e.redisDevice(t, "alice", "ApplMETRICS"); d.Access != devices.AccessAllowed {
		t.Errorf("unauthenticated block changed the device: %v", d.Access)
	}
	code, body := e.admin(t, http.MethodGet, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("metrics = %d", code)
	}
	for _, want := range []string{`easgate_devices{state="allowed"} 1`, `easgate_devices{state="blocked"} 0`, `easgate_eas_requests_total{code="200",command="Provision",status="1"} 2`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// authCounter reads the gateway's failure counter for user from Redis:
// the "n" field of the one eas:auth:* key that names the user.
func (e *env) authCounter(t *testing.T, user string) (string, int) {
	t.Helper()
	ctx := context.Background()
	keys, err := e.rdb.Keys(ctx, "eas:auth:*").Result()
	if err != nil {
		t.Fatal(err)
	}
	var match []string
	for _, k := range keys {
		if strings.Contains(k, user) {
			match = append(match, k)
		}
	}
	switch len(match) {
	case 0:
		return "", 0
	case 1:
	default:
		t.Fatalf("several failure counters for %s: %v", user, match)
	}
	n, err := e.rdb.HGet(ctx, match[0], "n").Int()
	if err != nil {
		t.Fatalf("HGET %s n: %v", match[0], err)
	}
	return match[0], n
}

// TestE2EWrongPasswords: wrong passwords are counted in Redis and slowed
// down exponentially after the free ones; the right password resets the
// count. The delays are asked of an injected sleeper, never waited.
func TestE2EWrongPasswords(t *testing.T) {
	e := startEnv(t, "")
	bad := e.client("bob", "ApplGUESS", "14.1")
	bad.Password = "guess"
	var want []time.Duration
	for i := range 6 {
		r := userInfo(t, bad)
		if r.HTTPStatus != http.StatusUnauthorized || len(r.Body) != 0 {
			t.Errorf("wrong password %d: %d %x", i+1, r.HTTPStatus, r.Body)
		}
		if d := throttle.Delay(i); d > 0 {
			want = append(want, d)
		}
		key, n := e.authCounter(t, "bob")
		if n != i+1 {
			t.Errorf("after %d failures Redis %s holds n=%d", i+1, key, n)
		}
	}
	if got := e.sleeps.taken(); !slices.Equal(got, want) {
		t.Errorf("slow-down delays %v, want %v", got, want)
	}
	if fmt.Sprint(want) != "[1s 2s 4s 8s]" {
		t.Errorf("throttle schedule %v is not the one this test means to check", want)
	}
	ttl, err := e.rdb.PTTL(context.Background(), func() string { k, _ := e.authCounter(t, "bob"); return k }()).Result()
	if err != nil || ttl <= 0 {
		t.Errorf("failure counter has no expiry: %v %v", ttl, err)
	}

	// Another user is not slowed down by bob's failures.
	before := len(e.sleeps.taken())
	other := e.client("alice", "ApplOTHER", "14.1")
	other.Password = "alsowrong"
	userInfo(t, other)
	if len(e.sleeps.taken()) != before {
		t.Error("alice was slowed down by bob's failures")
	}

	// The right password (after one more, slowed-down attempt) resets it.
	good := e.client("bob", "ApplGUESS", "14.1")
	r := userInfo(t, good)
	if r.HTTPStatus == http.StatusUnauthorized {
		t.Fatalf("right password refused")
	}
	if got := e.sleeps.taken(); len(got) != len(want)+1 || got[len(got)-1] != throttle.Delay(6) {
		t.Errorf("the good login after 6 failures waited %v", got[len(want):])
	}
	if key, n := e.authCounter(t, "bob"); n != 0 {
		t.Errorf("after a good login Redis still holds %s n=%d", key, n)
	}
}

// TestE2EFolderSync: after Provision, FolderSync 0 lists the Dovecot
// folders with one of each default type, an incremental FolderSync has no
// changes, and Redis holds the hierarchy state of the device.
func TestE2EFolderSync(t *testing.T) {
	e := startEnv(t, "")
	for _, v := range []string{"14.1", "16.1"} {
		t.Run(v, func(t *testing.T) {
			id := "ApplFOLDERS" + strings.ReplaceAll(v, ".", "")
			c := e.client("alice", id, v)
			ctx := context.Background()
			r, _, err := c.FolderSync(ctx, "0")
			if err != nil {
				t.Fatal(err)
			}
			expectGate(t, "FolderSync before Provision", "FolderSyncResponse", r, eas.StatusRetryProvision, eas.StatusDeviceNotProvisioned)
			provision(t, c, nil)

			r, fc, err := c.FolderSync(ctx, "0")
			if err != nil {
				t.Fatal(err)
			}
			checkWBXML(t, "FolderSyncResponse", r)
			if r.HTTPStatus != http.StatusOK || fc.Status != 1 || fc.SyncKey == "" || fc.SyncKey == "0" {
				t.Fatalf("FolderSync 0 = %d status %d key %q", r.HTTPStatus, fc.Status, fc.SyncKey)
			}
			types := map[int][]string{}
			for _, f := range fc.Add {
				types[f.Type] = append(types[f.Type], f.DisplayName)
			}
			for _, typ := range []int{2, 3, 4, 5} {
				if len(types[typ]) != 1 {
					t.Errorf("folders of type %d: %v", typ, types[typ])
				}
			}
			r, fc2, err := c.FolderSync(ctx, fc.SyncKey)
			if err != nil {
				t.Fatal(err)
			}
			checkWBXML(t, "FolderSyncResponse", r)
			if fc2.Status != 1 || len(fc2.Add)+len(fc2.Update)+len(fc2.Delete) != 0 {
				t.Errorf("incremental FolderSync = %+v", fc2)
			}
			fields, err := e.rdb.HKeys(ctx, "eas:{alice}:sync:"+strings.ToLower(id)).Result()
			if err != nil || !slices.Contains(fields, "m/") {
				t.Errorf("hierarchy state in Redis: fields %v, %v", fields, err)
			}
		})
	}
}
