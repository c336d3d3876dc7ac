package eas

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/policy"
	"github.com/easgate/easgate/wbxml"
)

// setDevice changes the stored record of the test device.
func (e *testEnv) setDevice(fn func(*devices.Device)) {
	e.t.Helper()
	_, err := e.store.UpsertDevice(context.Background(), testUser, "ApplDEV1", func(d *devices.Device) error {
		fn(d)
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *testEnv) device() *devices.Device {
	e.t.Helper()
	d, err := e.store.GetDevice(context.Background(), testUser, "appldev1")
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

func TestDeviceRegistration(t *testing.T) {
	e := newEnv(t, withStore(t), withPolicy(t, noProvisioning))
	e.srv.Handle("FolderSync", folderSyncOK)
	if w := e.do(post("FolderSync", "14.1", folderSyncBody(t))); w.Code != 200 {
		t.Fatalf("code %d", w.Code)
	}
	d := e.device()
	if d.Type != "iPhone" || d.UserAgent != "Apple-iPhone11C8/2007.75" || d.ProtocolVersion != "14.1" ||
		!d.FirstSeen.Equal(e.now) || !d.LastSeen.Equal(e.now) {
		t.Errorf("device %+v", d)
	}
	rev := d.Revision

	// Within a minute and unchanged: no write.
	e.advance(30 * time.Second)
	e.do(post("FolderSync", "14.1", folderSyncBody(t)))
	if d := e.device(); d.Revision != rev {
		t.Errorf("record written again (revision %d → %d)", rev, d.Revision)
	}
	// A new version is written at once.
	e.do(post("FolderSync", "16.1", folderSyncBody(t)))
	d = e.device()
	if d.Revision != rev+1 || d.ProtocolVersion != "16.1" || !d.LastSeen.Equal(e.now) {
		t.Errorf("after version change: %+v", d)
	}
	// Later than a minute: LastSeen refreshed.
	e.advance(2 * time.Minute)
	e.do(post("FolderSync", "16.1", folderSyncBody(t)))
	if d := e.device(); !d.LastSeen.Equal(e.now) || !d.FirstSeen.Equal(e.now.Add(-150*time.Second)) {
		t.Errorf("after two minutes: first %v last %v", d.FirstSeen, d.LastSeen)
	}
}

func TestGate(t *testing.T) {
	e := newEnv(t, withStore(t))
	e.srv.Handle("FolderSync", folderSyncOK)
	e.srv.Handle("MeetingResponse", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		return Response{}, nil
	})
	e.srv.Handle("Ping", func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		return Response{Element: wbxml.E(wbxml.PingPing, wbxml.T(wbxml.PingStatus, "1"))}, nil
	})
	hash := e.srv.policy.Config().PolicyFor(testUser).Hash()
	withKey := func(cmd, version string, key string) func() *http.Request {
		return func() *http.Request {
			r := post(cmd, version, nil)
			if cmd == "FolderSync" {
				r = post(cmd, version, folderSyncBody(t))
			}
			if key != "" {
				r.Header.Set("X-MS-PolicyKey", key)
			}
			return r
		}
	}
	ping := errorCase{root: wbxml.PingPing, statTag: wbxml.PingStatus}
	steps := []struct {
		name  string
		setup func(*devices.Device)
		cases []errorCase
	}{
		{"unprovisioned", nil, []errorCase{
			{name: "12.1 no key", req: withKey("FolderSync", "12.1", ""), code: 449},
			{name: "12.1 key 0", req: withKey("FolderSync", "12.1", "0"), code: 449},
			{name: "14.1 no key", req: withKey("FolderSync", "14.1", ""), code: 449, status: "142"},
			{name: "16.1 unknown key", req: withKey("FolderSync", "16.1", "12345"), code: 449, status: "144"},
			{name: "Ping needs no key", req: withKey("Ping", "14.1", ""), code: 200, status: "1", root: ping.root, statTag: ping.statTag},
		}},
		{"provisioned", func(d *devices.Device) { d.PolicyKey, d.PolicyHash = 777, hash }, []errorCase{
			{name: "12.1 right key", req: withKey("FolderSync", "12.1", "777"), code: 200, status: "1"},
			{name: "14.1 right key", req: withKey("FolderSync", "14.1", "777"), code: 200, status: "1"},
			{name: "14.1 old key", req: withKey("FolderSync", "14.1", "776"), code: 449, status: "144"},
		}},
		{"policy changed", func(d *devices.Device) { d.PolicyHash = "older" }, []errorCase{
			{name: "14.1", req: withKey("FolderSync", "14.1", "777"), code: 449, status: "143"},
			{name: "12.1", req: withKey("FolderSync", "12.1", "777"), code: 449},
		}},
		{"blocked", func(d *devices.Device) { d.PolicyHash, d.Access = hash, devices.AccessBlocked }, []errorCase{
			{name: "12.1", req: withKey("FolderSync", "12.1", "777"), code: 403},
			{name: "14.1", req: withKey("FolderSync", "14.1", "777"), code: 200, status: "129"},
			{name: "14.1 Ping", req: withKey("Ping", "14.1", ""), code: 200, status: "129", root: ping.root, statTag: ping.statTag},
			{name: "14.1 MeetingResponse", req: withKey("MeetingResponse", "14.1", "777"), code: 403},
		}},
		{"quarantined", func(d *devices.Device) { d.Access = devices.AccessQuarantined }, []errorCase{
			{name: "14.1", req: withKey("FolderSync", "14.1", "777"), code: 200, status: "129"},
		}},
		{"wipe pending", func(d *devices.Device) { d.Access, d.Wipe = devices.AccessAllowed, devices.WipePending }, []errorCase{
			{name: "12.1", req: withKey("FolderSync", "12.1", "777"), code: 449},
			{name: "14.1", req: withKey("FolderSync", "14.1", "777"), code: 449, status: "140"},
			{name: "14.1 Ping", req: withKey("Ping", "14.1", ""), code: 449, status: "140", root: ping.root, statTag: ping.statTag},
		}},
		{"wiped", func(d *devices.Device) { d.Wipe, d.WipeStatus = devices.WipeAcknowledged, 1 }, []errorCase{
			{name: "12.1", req: withKey("FolderSync", "12.1", "777"), code: 403},
			{name: "16.1", req: withKey("FolderSync", "16.1", "777"), code: 200, status: "129"},
		}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			if s.setup != nil {
				e.setDevice(s.setup)
			}
			runErrorCases(t, e, s.cases)
		})
	}
}

// TestDeviceStateMapping checks how a device record becomes the policy
// gate's input: an administrator's approval must reach the gate as an
// explicit allow (beating access rules), and the stored key hashes must be
// used as they are.
func TestDeviceStateMapping(t *testing.T) {
	tests := []struct {
		name   string
		dev    devices.Device
		access policy.Action
		keys   policy.Keys
	}{
		{"default", devices.Device{}, policy.ActionNone, policy.Keys{}},
		{"approved", devices.Device{Access: devices.AccessApproved}, policy.ActionAllow, policy.Keys{}},
		{"blocked", devices.Device{Access: devices.AccessBlocked}, policy.ActionBlock, policy.Keys{}},
		{"quarantined", devices.Device{Access: devices.AccessQuarantined}, policy.ActionQuarantine, policy.Keys{}},
		{"keys", devices.Device{PolicyKey: 7, PolicyHash: "h1", PendingPolicyKey: 9, PendingPolicyHash: "h2", AckedPolicyKey: 5},
			policy.ActionNone, policy.Keys{Current: 7, CurrentHash: "h1", Pending: 9, PendingHash: "h2", Acked: 5}},
		{"pending key of an old record", devices.Device{PendingPolicyKey: 9},
			policy.ActionNone, policy.Keys{Pending: 9, PendingHash: "now"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := deviceState(&tt.dev, "now")
			if got.Access != tt.access || got.Keys != tt.keys {
				t.Errorf("deviceState = access %v keys %+v, want %v %+v", got.Access, got.Keys, tt.access, tt.keys)
			}
		})
	}
}
