package eas

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/wbxml"
	"github.com/easgate/easgate/wbxml/wbxmltest"
)

func provisionPhase1(withInfo bool) *wbxml.Element {
	var info *wbxml.Element
	if withInfo {
		info = wbxml.E(wbxml.SettingsDeviceInformation, wbxml.E(wbxml.SettingsSet,
			wbxml.T(wbxml.SettingsModel, "iPhone15,2"),
			wbxml.T(wbxml.SettingsOS, "iOS 18.1"),
			wbxml.T(wbxml.SettingsUserAgent, "Apple-iPhone15C2/2201.83")))
	}
	return wbxml.E(wbxml.ProvisionProvision, info,
		wbxml.E(wbxml.ProvisionPolicies, wbxml.E(wbxml.ProvisionPolicy,
			wbxml.T(wbxml.ProvisionPolicyType, "MS-EAS-Provisioning-WBXML"))))
}

func provisionPhase2(key uint32, status int) *wbxml.Element {
	return wbxml.E(wbxml.ProvisionProvision,
		wbxml.E(wbxml.ProvisionPolicies, wbxml.E(wbxml.ProvisionPolicy,
			wbxml.T(wbxml.ProvisionPolicyType, "MS-EAS-Provisioning-WBXML"),
			wbxml.T(wbxml.ProvisionPolicyKey, strconv.FormatUint(uint64(key), 10)),
			wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(status)))))
}

func wipeAck(tag wbxml.Tag, status int) *wbxml.Element {
	return wbxml.E(wbxml.ProvisionProvision, wbxml.E(tag, wbxml.T(wbxml.ProvisionStatus, strconv.Itoa(status))))
}

// provisionResult is what a test reads from a Provision response.
type provisionResult struct {
	status, policyStatus, infoStatus string
	key                              uint32
	doc, wipe, accountWipe           bool
}

func (e *testEnv) provision(version, key string, body *wbxml.Element) (int, provisionResult) {
	e.t.Helper()
	r := post("Provision", version, mustMarshal(e.t, body))
	if key != "" {
		r.Header.Set("X-MS-PolicyKey", key)
	}
	w := e.do(r)
	if w.Code != http.StatusOK {
		return w.Code, provisionResult{}
	}
	wbxmltest.ValidateResponse(e.t, "ProvisionResponse", w.Body.Bytes())
	doc := decode(e.t, w)
	if doc.Tag != wbxml.ProvisionProvision {
		e.t.Fatalf("root %v", doc.Tag)
	}
	p := doc.Child(wbxml.ProvisionPolicies).Child(wbxml.ProvisionPolicy)
	res := provisionResult{
		status:       doc.ChildText(wbxml.ProvisionStatus),
		infoStatus:   doc.Child(wbxml.SettingsDeviceInformation).ChildText(wbxml.SettingsStatus),
		policyStatus: p.ChildText(wbxml.ProvisionStatus),
		doc:          p.Child(wbxml.ProvisionData).Has(wbxml.ProvisionEASProvisionDoc),
		wipe:         doc.Has(wbxml.ProvisionRemoteWipe),
		accountWipe:  doc.Has(wbxml.ProvisionAccountOnlyRemoteWipe),
	}
	if k := p.ChildText(wbxml.ProvisionPolicyKey); k != "" {
		n, err := strconv.ParseUint(k, 10, 32)
		if err != nil {
			e.t.Fatalf("PolicyKey %q", k)
		}
		res.key = uint32(n)
	}
	return w.Code, res
}

func TestProvisionHandshake(t *testing.T) {
	for _, version := range []string{"12.1", "14.1", "16.1"} {
		t.Run(version, func(t *testing.T) {
			e := newEnv(t, withStore(t))
			e.srv.Handle("FolderSync", folderSyncOK)
			withInfo := version != "12.1"

			fs := post("FolderSync", version, folderSyncBody(t))
			fs.Header.Set("X-MS-PolicyKey", "0")
			if w := e.do(fs); w.Code != StatusRetryProvision {
				t.Fatalf("FolderSync before Provision: %d", w.Code)
			}

			code, p1 := e.provision(version, "0", provisionPhase1(withInfo))
			if code != 200 || p1.status != "1" || p1.policyStatus != "1" || p1.key == 0 || !p1.doc || p1.wipe {
				t.Fatalf("phase 1: %d %+v", code, p1)
			}
			if want := map[bool]string{true: "1", false: ""}[withInfo]; p1.infoStatus != want {
				t.Errorf("DeviceInformation status %q, want %q", p1.infoStatus, want)
			}
			d := e.device()
			if d.PendingPolicyKey != p1.key || d.PolicyKey != 0 {
				t.Errorf("after phase 1: pending %d current %d", d.PendingPolicyKey, d.PolicyKey)
			}
			if withInfo && (d.Info.Model != "iPhone15,2" || d.Info.OS != "iOS 18.1") {
				t.Errorf("DeviceInformation not stored: %+v", d.Info)
			}

			// The temporary key does not open the door.
			fs = post("FolderSync", version, folderSyncBody(t))
			fs.Header.Set("X-MS-PolicyKey", fmt.Sprint(p1.key))
			if w := e.do(fs); w.Code != StatusRetryProvision {
				t.Errorf("FolderSync with the temporary key: %d", w.Code)
			}

			code, bad := e.provision(version, fmt.Sprint(p1.key), provisionPhase2(p1.key+1, 1))
			if code != 200 || bad.policyStatus != "5" || bad.key != 0 {
				t.Errorf("phase 2 with a wrong key: %d %+v", code, bad)
			}

			code, p2 := e.provision(version, fmt.Sprint(p1.key), provisionPhase2(p1.key, 1))
			if code != 200 || p2.status != "1" || p2.policyStatus != "1" || p2.key == 0 || p2.key == p1.key || p2.doc {
				t.Fatalf("phase 2: %d %+v", code, p2)
			}
			d = e.device()
			if d.PolicyKey != p2.key || d.PendingPolicyKey != 0 || d.PolicyStatus != 1 {
				t.Errorf("after phase 2: %+v", d)
			}

			fs = post("FolderSync", version, folderSyncBody(t))
			fs.Header.Set("X-MS-PolicyKey", fmt.Sprint(p2.key))
			if w := e.do(fs); w.Code != 200 {
				t.Errorf("FolderSync with the final key: %d", w.Code)
			}
		})
	}
}

func TestProvisionRemoteWipe(t *testing.T) {
	tests := []struct {
		version     string
		state       devices.WipeState
		ackTag      wbxml.Tag
		ackStatus   int
		accountOnly bool
	}{
		{"14.1", devices.WipePending, wbxml.ProvisionRemoteWipe, 1, false},
		{"12.1", devices.WipePending, wbxml.ProvisionRemoteWipe, 2, false},
		{"16.1", devices.WipePendingAccountOnly, wbxml.ProvisionAccountOnlyRemoteWipe, 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.version+"/"+tt.state.String(), func(t *testing.T) {
			e := newEnv(t, withStore(t))
			e.srv.Handle("FolderSync", folderSyncOK)
			e.do(post("FolderSync", tt.version, folderSyncBody(t))) // registers the device
			e.setDevice(func(d *devices.Device) { d.Wipe, d.WipeRequested = tt.state, e.now })

			w := e.do(post("FolderSync", tt.version, folderSyncBody(t)))
			if w.Code != StatusRetryProvision {
				t.Fatalf("FolderSync with a wipe pending: %d", w.Code)
			}
			if tt.version != "12.1" && statusOf(t, w, wbxml.FolderHierarchyFolderSync, wbxml.FolderHierarchyStatus) != "140" {
				t.Error("no Status 140")
			}

			code, p := e.provision(tt.version, "", provisionPhase1(false))
			if code != 200 || p.wipe == tt.accountOnly || p.accountWipe != tt.accountOnly {
				t.Fatalf("Provision with a wipe pending: %d %+v", code, p)
			}

			e.advance(90 * time.Second)
			code, ack := e.provision(tt.version, "", wipeAck(tt.ackTag, tt.ackStatus))
			if code != 200 || ack.status != "1" {
				t.Fatalf("wipe acknowledgement: %d %+v", code, ack)
			}
			d := e.device()
			if d.Wipe != devices.WipeAcknowledged || d.WipeStatus != tt.ackStatus || !d.WipeAcknowledged.Equal(e.now) {
				t.Errorf("recorded wipe: %v status %d at %v", d.Wipe, d.WipeStatus, d.WipeAcknowledged)
			}

			w = e.do(post("FolderSync", tt.version, folderSyncBody(t)))
			switch tt.version {
			case "12.1":
				if w.Code != http.StatusForbidden {
					t.Errorf("after the wipe: %d", w.Code)
				}
			default:
				if w.Code != 200 || statusOf(t, w, wbxml.FolderHierarchyFolderSync, wbxml.FolderHierarchyStatus) != "129" {
					t.Errorf("after the wipe: %d", w.Code)
				}
			}
			if code, _ := e.provision(tt.version, "", provisionPhase1(false)); code == 200 && tt.version == "12.1" {
				t.Error("a wiped 12.1 device may provision again")
			}
		})
	}
}

func TestProvisionRefusals(t *testing.T) {
	e := newEnv(t, withStore(t))
	e.srv.Handle("FolderSync", folderSyncOK)
	e.do(post("FolderSync", "12.1", folderSyncBody(t)))
	e.setDevice(func(d *devices.Device) { d.Access = devices.AccessBlocked })
	if code, _ := e.provision("12.1", "", provisionPhase1(false)); code != http.StatusForbidden {
		t.Errorf("blocked 12.1 Provision: %d", code)
	}
	w := e.do(post("Provision", "14.1", mustMarshal(t, provisionPhase1(true))))
	if w.Code != 200 || statusOf(t, w, wbxml.ProvisionProvision, wbxml.ProvisionStatus) != "129" {
		t.Errorf("blocked 14.1 Provision: %d", w.Code)
	}
	e.setDevice(func(d *devices.Device) { d.Access = devices.AccessAllowed })

	w = e.do(post("Provision", "14.1", nil))
	if w.Code != 200 || statusOf(t, w, wbxml.ProvisionProvision, wbxml.ProvisionStatus) != "101" {
		t.Errorf("empty Provision: %d", w.Code)
	}
	bad := wbxml.E(wbxml.ProvisionProvision, wbxml.E(wbxml.ProvisionPolicies, wbxml.E(wbxml.ProvisionPolicy,
		wbxml.T(wbxml.ProvisionPolicyType, "MS-EAS-Provisioning-WBXML"), wbxml.T(wbxml.ProvisionPolicyKey, "x"))))
	w = e.do(post("Provision", "14.1", mustMarshal(t, bad)))
	if w.Code != 200 || statusOf(t, w, wbxml.ProvisionProvision, wbxml.ProvisionStatus) != "103" {
		t.Errorf("PolicyKey not a number: %d", w.Code)
	}
	if code, p := e.provision("14.1", "", wbxml.E(wbxml.ProvisionProvision)); code != 200 || p.status != "2" {
		t.Errorf("Provision without Policies: %d %+v", code, p)
	}
}
