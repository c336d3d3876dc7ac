package policy

import (
	"net/http"
	"testing"
)

const gateDoc = `
[provisioning]
required = true
exempt_user_agents = ["TouchDown*"]

[policies.strict]
DevicePasswordEnabled = true
MinDevicePasswordLength = 6

[users]
"u@example.com" = "strict"

[[access.rules]]
name = "blocked-model"
action = "block"
model = "Evil*"

[[access.rules]]
name = "quarantine-type"
action = "quarantine"
device_type = "Unknown*"
`

func mustParse(t testing.TB, doc string) *Config {
	t.Helper()
	c, err := Parse("test.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGate is the decision table: protocol version × command × policy key
// state × device state, with the expected outcome and what goes on the wire.
func TestGate(t *testing.T) {
	req := mustParse(t, gateDoc)
	byod := mustParse(t, "[provisioning]\nrequired = false\n")
	h := req.PolicyFor("u@example.com").Hash()

	const K, P, other = uint32(1111), uint32(2222), uint32(3333)
	fresh := DeviceState{}
	provisioned := DeviceState{Keys: Keys{Current: K, CurrentHash: h, Acked: P}}
	stale := DeviceState{Keys: Keys{Current: K, CurrentHash: "0000000000000000"}}
	pendingOnly := DeviceState{Keys: Keys{Pending: P, PendingHash: h}}
	with := func(d DeviceState, f func(*DeviceState)) DeviceState { f(&d); return d }
	blocked := with(provisioned, func(d *DeviceState) { d.Access = ActionBlock })
	allowed := with(provisioned, func(d *DeviceState) { d.Access = ActionAllow })
	quarantined := with(provisioned, func(d *DeviceState) { d.Access = ActionQuarantine })
	wipe := with(provisioned, func(d *DeviceState) { d.Wipe = WipePending })
	wipeSent := with(provisioned, func(d *DeviceState) { d.Wipe = WipeSent })
	wipeAcct := with(provisioned, func(d *DeviceState) { d.Wipe, d.WipeAccountOnly = WipePending, true })
	wiped := with(provisioned, func(d *DeviceState) { d.Wipe = WipeDone })
	wipeFailed := with(provisioned, func(d *DeviceState) { d.Wipe = WipeFailed })
	wipeBlocked := with(wipe, func(d *DeviceState) { d.Access = ActionBlock })

	tests := []struct {
		name    string
		c       *Config
		ver     string
		cmd     string
		key     uint32
		devType string
		ua      string
		model   string
		dev     DeviceState
		want    Outcome
		http    int
		status  int
		rule    string
	}{
		// Provisioning.
		{"12.1 no key", req, "12.1", "FolderSync", 0, "iPhone", "", "", fresh, NeedProvision, 449, 0, ""},
		{"14.1 no key", req, "14.1", "FolderSync", 0, "iPhone", "", "", fresh, NeedProvision, 449, 142, ""},
		{"16.1 key lost by client", req, "16.1", "FolderSync", 0, "iPhone", "", "", provisioned, NeedProvision, 449, 142, ""},
		{"14.0 wrong key", req, "14.0", "Sync", other, "iPhone", "", "", provisioned, NeedProvision, 449, 144, ""},
		{"16.1 key we never issued", req, "16.1", "Sync", K, "iPhone", "", "", fresh, NeedProvision, 449, 144, ""},
		{"14.1 temporary key", req, "14.1", "Sync", P, "iPhone", "", "", pendingOnly, NeedProvision, 449, 144, ""},
		{"12.1 wrong key", req, "12.1", "Sync", other, "iPhone", "", "", provisioned, NeedProvision, 449, 0, ""},
		{"14.1 policy changed", req, "14.1", "Sync", K, "iPhone", "", "", stale, NeedProvision, 449, 143, ""},
		{"16.0 policy changed", req, "16.0", "Sync", K, "iPhone", "", "", stale, NeedProvision, 449, 143, ""},
		{"12.0 policy changed", req, "12.0", "Sync", K, "iPhone", "", "", stale, NeedProvision, 449, 0, ""},
		{"unknown version acts as 12.1", req, "", "FolderSync", 0, "iPhone", "", "", fresh, NeedProvision, 449, 0, ""},
		{"14.1 current key", req, "14.1", "Sync", K, "iPhone", "", "", provisioned, Allow, 0, 0, ""},
		{"12.1 current key", req, "12.1", "Sync", K, "iPhone", "", "", provisioned, Allow, 0, 0, ""},
		{"other user's policy hash", req, "14.1", "Sync", K, "iPhone", "", "", with(provisioned, func(d *DeviceState) { d.Keys.CurrentHash = Default().DefaultPolicy().Hash() }), NeedProvision, 449, 143, ""},

		// Commands that never need a key.
		{"14.1 Ping without key", req, "14.1", "Ping", 0, "Android", "", "", fresh, Allow, 0, 0, ""},
		{"12.1 Ping without key", req, "12.1", "Ping", 0, "Android", "", "", stale, Allow, 0, 0, ""},
		{"ping in lower case", req, "14.1", "ping", 0, "Android", "", "", fresh, Allow, 0, 0, ""},
		{"16.1 Provision without key", req, "16.1", "Provision", 0, "iPhone", "", "", fresh, Allow, 0, 0, ""},
		{"12.1 Provision wrong key", req, "12.1", "Provision", other, "iPhone", "", "", stale, Allow, 0, 0, ""},
		{"OPTIONS even when blocked", req, "", "OPTIONS", 0, "", "", "", blocked, Allow, 0, 0, ""},
		{"Autodiscover even when wiped", req, "", "Autodiscover", 0, "", "", "", wiped, Allow, 0, 0, ""},

		// Exemptions and provisioning switched off.
		{"Outlook desktop", req, "14.1", "FolderSync", 0, "WindowsOutlook", "Outlook/16.0", "", fresh, Allow, 0, 0, ""},
		{"exempt user agent", req, "14.1", "Sync", 0, "Android", "TouchDown/8.5", "", fresh, Allow, 0, 0, ""},
		{"byod no key", byod, "14.1", "FolderSync", 0, "iPhone", "", "", fresh, Allow, 0, 0, ""},
		{"byod stale key", byod, "12.1", "Sync", K, "iPhone", "", "", stale, Allow, 0, 0, ""},
		{"byod still blocks", byod, "14.1", "FolderSync", 0, "iPhone", "", "", blocked, Blocked, 200, 129, "device"},
		{"Outlook still blocked", req, "14.1", "FolderSync", 0, "WindowsOutlook", "", "", blocked, Blocked, 200, 129, "device"},

		// Blocked.
		{"12.1 blocked", req, "12.1", "Sync", K, "iPhone", "", "", blocked, Blocked, 403, 0, "device"},
		{"14.1 blocked", req, "14.1", "Sync", K, "iPhone", "", "", blocked, Blocked, 200, 129, "device"},
		{"14.1 Provision blocked", req, "14.1", "Provision", 0, "iPhone", "", "", blocked, Blocked, 200, 129, "device"},
		{"12.1 Provision blocked", req, "12.1", "Provision", 0, "iPhone", "", "", blocked, Blocked, 403, 0, "device"},
		{"14.1 Ping blocked", req, "14.1", "Ping", 0, "iPhone", "", "", blocked, Blocked, 200, 129, "device"},
		{"blocked by rule", req, "16.1", "FolderSync", K, "Android", "", "EvilPhone 3", provisioned, Blocked, 200, 129, "blocked-model"},
		{"device allow beats rule", req, "16.1", "FolderSync", K, "Android", "", "EvilPhone 3", allowed, Allow, 0, 0, "device"},

		// Quarantined.
		{"14.1 quarantined by rule", req, "14.1", "FolderSync", K, "UnknownPhone", "", "", provisioned, Quarantined, 200, 129, "quarantine-type"},
		{"14.1 quarantined may provision", req, "14.1", "Provision", 0, "iPhone", "", "", quarantined, Allow, 0, 0, "device"},
		{"12.1 quarantined may not provision", req, "12.1", "Provision", 0, "iPhone", "", "", quarantined, Quarantined, 403, 0, "device"},
		{"12.1 quarantined", req, "12.1", "Sync", K, "iPhone", "", "", quarantined, Quarantined, 403, 0, "device"},
		{"16.1 Ping quarantined", req, "16.1", "Ping", 0, "iPhone", "", "", quarantined, Quarantined, 200, 129, "device"},
		{"quarantine before key check", req, "14.1", "Sync", 0, "iPhone", "", "", with(fresh, func(d *DeviceState) { d.Access = ActionQuarantine }), Quarantined, 200, 129, "device"},

		// Remote wipe.
		{"12.1 wipe pending", req, "12.1", "Sync", K, "iPhone", "", "", wipe, WipeRequested, 449, 0, ""},
		{"14.1 wipe pending", req, "14.1", "Sync", K, "iPhone", "", "", wipe, WipeRequested, 449, 140, ""},
		{"14.1 Ping gets the wipe", req, "14.1", "Ping", 0, "iPhone", "", "", wipe, WipeRequested, 449, 140, ""},
		{"14.1 Provision delivers the wipe", req, "14.1", "Provision", 0, "iPhone", "", "", wipe, Allow, 0, 0, ""},
		{"16.1 wipe sent, no ack yet", req, "16.1", "FolderSync", K, "iPhone", "", "", wipeSent, WipeRequested, 449, 140, ""},
		{"16.1 account-only wipe", req, "16.1", "FolderSync", K, "iPhone", "", "", wipeAcct, WipeRequested, 449, 140, ""},
		{"14.1 account-only wipe refused", req, "14.1", "FolderSync", K, "iPhone", "", "", wipeAcct, Blocked, 200, 129, ""},
		{"14.1 account-only wipe, Provision refused", req, "14.1", "Provision", 0, "iPhone", "", "", wipeAcct, Blocked, 200, 129, ""},
		{"12.1 account-only wipe refused", req, "12.1", "Sync", K, "iPhone", "", "", wipeAcct, Blocked, 403, 0, ""},
		{"14.1 wiped", req, "14.1", "Sync", K, "iPhone", "", "", wiped, Blocked, 200, 129, ""},
		{"12.1 Provision after wipe", req, "12.1", "Provision", 0, "iPhone", "", "", wiped, Blocked, 403, 0, ""},
		{"16.1 wipe failed", req, "16.1", "Sync", K, "iPhone", "", "", wipeFailed, Blocked, 200, 129, ""},
		{"wipe beats block", req, "14.1", "Sync", K, "iPhone", "", "", wipeBlocked, WipeRequested, 449, 140, "device"},
		{"wipe in byod mode", byod, "14.1", "Sync", 0, "iPhone", "", "", wipe, WipeRequested, 449, 140, ""},
		{"wipe reaches Outlook", req, "14.1", "Sync", 0, "WindowsOutlook", "", "", wipe, WipeRequested, 449, 140, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.c.Gate(Request{
				Command: tt.cmd, Version: tt.ver, PolicyKey: tt.key, User: "u@example.com",
				DeviceType: tt.devType, UserAgent: tt.ua, Model: tt.model, Device: tt.dev,
			})
			if d.Outcome != tt.want || d.HTTPStatus != tt.http || d.Status != tt.status {
				t.Errorf("Gate = %v HTTP %d Status %d (%s), want %v HTTP %d Status %d",
					d.Outcome, d.HTTPStatus, d.Status, d.Reason, tt.want, tt.http, tt.status)
			}
			if d.Rule != tt.rule {
				t.Errorf("rule = %q, want %q", d.Rule, tt.rule)
			}
			if d.Reason == "" {
				t.Error("no reason for the log")
			}
		})
	}
}

// TestGateInvariants sweeps every version × command × key × device state and
// checks the rules that must hold whatever the row.
func TestGateInvariants(t *testing.T) {
	c := mustParse(t, gateDoc)
	h := c.PolicyFor("u@example.com").Hash()
	versions := []string{"12.0", "12.1", "14.0", "14.1", "16.0", "16.1"}
	commands := []string{"Sync", "FolderSync", "SendMail", "Settings", "Ping", "Provision", "OPTIONS", "Autodiscover"}
	keys := []uint32{0, 1, 2}
	var states []DeviceState
	for _, access := range []Action{ActionNone, ActionAllow, ActionBlock, ActionQuarantine} {
		for _, wipe := range []WipeState{WipeNone, WipePending, WipeSent, WipeDone, WipeFailed} {
			for _, acct := range []bool{false, true} {
				for _, k := range []Keys{{}, {Current: 1, CurrentHash: h}, {Current: 1, CurrentHash: "x"}, {Pending: 2, PendingHash: h}} {
					states = append(states, DeviceState{Access: access, Wipe: wipe, WipeAccountOnly: acct, Keys: k})
				}
			}
		}
	}
	for _, v := range versions {
		for _, cmd := range commands {
			for _, key := range keys {
				for _, s := range states {
					d := c.Gate(Request{Command: cmd, Version: v, PolicyKey: key, User: "u@example.com", DeviceType: "iPhone", Device: s})
					old := v < "14.0"
					switch {
					case d.Outcome == Allow && (d.HTTPStatus != 0 || d.Status != 0):
						t.Fatalf("%s %s: allow with a status: %+v", v, cmd, d)
					case d.Outcome != Allow && old && d.Status != 0:
						t.Fatalf("%s %s: in-body status before 14.0: %+v", v, cmd, d)
					case d.Outcome != Allow && !old && d.Status == 0:
						t.Fatalf("%s %s: no in-body status from 14.0: %+v", v, cmd, d)
					case d.Outcome == NeedProvision && (cmd == "Ping" || cmd == "Provision" || cmd == "OPTIONS" || cmd == "Autodiscover"):
						t.Fatalf("%s %s demands a key: %+v", v, cmd, d)
					case (cmd == "OPTIONS" || cmd == "Autodiscover") && d.Outcome != Allow:
						t.Fatalf("%s %s refused: %+v", v, cmd, d)
					case d.Outcome == Blocked && old && d.HTTPStatus != http.StatusForbidden:
						t.Fatalf("%s %s: blocked without 403: %+v", v, cmd, d)
					case (d.Outcome == Blocked || d.Outcome == Quarantined) && !old && d.HTTPStatus != http.StatusOK:
						t.Fatalf("%s %s: 14.0+ refusal must be HTTP 200 (AOSP re-provisions on 403): %+v", v, cmd, d)
					case (d.Outcome == NeedProvision || d.Outcome == WipeRequested) && d.HTTPStatus != StatusRetryProvision:
						t.Fatalf("%s %s: provisioning without 449: %+v", v, cmd, d)
					case s.Access == ActionBlock && s.Wipe == WipeNone && d.Outcome == Allow && cmd != "OPTIONS" && cmd != "Autodiscover":
						t.Fatalf("%s %s: blocked device let through: %+v", v, cmd, d)
					}
				}
			}
		}
	}
}

func TestNewPolicyKey(t *testing.T) {
	seen := make(map[uint32]bool)
	for i := 0; i < 1000; i++ {
		k := NewPolicyKey()
		if k == 0 {
			t.Fatal("NewPolicyKey returned 0")
		}
		seen[k] = true
	}
	// 1000 draws from 2^32 values collide with probability ~1e-4; allow one.
	if len(seen) < 999 {
		t.Fatalf("only %d distinct keys in 1000", len(seen))
	}
}

// BenchmarkGate is the per-request cost of the gate with a few access rules
// and a provisioned device (the common case).
func BenchmarkGate(b *testing.B) {
	c := mustParse(b, gateDoc)
	r := Request{
		Command: "Sync", Version: "16.1", PolicyKey: 1111, User: "u@example.com",
		DeviceType: "iPhone", UserAgent: "Apple-iPhone15C2/2101.100", Model: "iPhone15,2",
		Device: DeviceState{Keys: Keys{Current: 1111, CurrentHash: c.PolicyFor("u@example.com").Hash()}},
	}
	for b.Loop() {
		if d := c.Gate(r); d.Outcome != Allow {
			b.Fatal(d)
		}
	}
}

func BenchmarkNewPolicyKey(b *testing.B) {
	for b.Loop() {
		NewPolicyKey()
	}
}
