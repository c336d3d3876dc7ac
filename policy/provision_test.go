package policy

import (
	"net/http"
	"testing"
)

// phone drives Config.Provision and Config.Gate the way the eas front door
// does: it keeps the device state the results return and the key the
// client would remember.
type phone struct {
	t       *testing.T
	c       *Config
	version string
	user    string
	devType string
	dev     DeviceState
	key     uint32 // the key the client sends in X-MS-PolicyKey
}

func (p *phone) provision(r ProvisionRequest) ProvisionResult {
	p.t.Helper()
	r.Version, r.User, r.DeviceType, r.Device = p.version, p.user, p.devType, p.dev
	res := p.c.Provision(r)
	if res.Reason == "" {
		p.t.Error("Provision gave no reason for the log")
	}
	if res.Changed {
		p.dev = res.Device
	} else if res.Device != p.dev {
		p.t.Errorf("device state changed but Changed is false: %+v -> %+v", p.dev, res.Device)
	}
	return res
}

// phase1 and phase2 are the two requests of a normal handshake.
func (p *phone) phase1() ProvisionResult {
	return p.provision(ProvisionRequest{HasPolicy: true, PolicyType: PolicyTypeWBXML, DeviceInformation: p.version >= "14.1"})
}

func (p *phone) phase2(key uint32, status int) ProvisionResult {
	return p.provision(ProvisionRequest{HasPolicy: true, PolicyType: PolicyTypeWBXML, PolicyKey: key, PolicyStatus: status})
}

func (p *phone) gate(cmd string) Decision {
	return p.c.Gate(Request{Command: cmd, Version: p.version, PolicyKey: p.key, User: p.user, DeviceType: p.devType, Device: p.dev})
}

// handshake runs both phases and checks the happy path.
func (p *phone) handshake() {
	p.t.Helper()
	r1 := p.phase1()
	if r1.Status != 1 || r1.PolicyStatus != 1 || r1.PolicyKey == 0 || r1.Policy == nil {
		p.t.Fatalf("phase 1 = %+v", r1)
	}
	if p.version >= "14.1" && r1.DeviceInformationStatus != 1 {
		p.t.Errorf("DeviceInformation not acknowledged")
	}
	r2 := p.phase2(r1.PolicyKey, 1)
	if r2.Status != 1 || r2.PolicyStatus != 1 || r2.PolicyKey == 0 || r2.PolicyKey == r1.PolicyKey || r2.Policy != nil {
		p.t.Fatalf("phase 2 = %+v (temporary key %d)", r2, r1.PolicyKey)
	}
	p.key = r2.PolicyKey
}

func newPhone(t *testing.T, c *Config, version string) *phone {
	return &phone{t: t, c: c, version: version, user: "u@example.com", devType: "iPhone"}
}

func TestProvisionHandshake(t *testing.T) {
	for _, v := range []string{"12.0", "12.1", "14.0", "14.1", "16.0", "16.1"} {
		t.Run(v, func(t *testing.T) {
			c := mustParse(t, gateDoc)
			p := newPhone(t, c, v)
			if d := p.gate("FolderSync"); d.Outcome != NeedProvision {
				t.Fatalf("before Provision: %+v", d)
			}
			r1 := p.phase1()
			if r1.Policy != c.PolicyFor(p.user) || p.dev.Keys.Pending != r1.PolicyKey || p.dev.Keys.PendingHash != r1.Policy.Hash() {
				t.Fatalf("phase 1 stored %+v for %+v", p.dev.Keys, r1)
			}
			// The temporary key does not open the door.
			p.key = r1.PolicyKey
			if d := p.gate("FolderSync"); d.Outcome != NeedProvision {
				t.Fatalf("temporary key accepted: %+v", d)
			}
			r2 := p.phase2(r1.PolicyKey, 1)
			if r2.PolicyStatus != 1 || p.dev.Keys.Current != r2.PolicyKey || p.dev.Keys.Pending != 0 || p.dev.Keys.Acked != r1.PolicyKey {
				t.Fatalf("phase 2 stored %+v for %+v", p.dev.Keys, r2)
			}
			p.key = r2.PolicyKey
			if d := p.gate("FolderSync"); d.Outcome != Allow {
				t.Fatalf("after Provision: %+v", d)
			}
			// The acknowledgement is repeated (the answer was lost): same key.
			again := p.phase2(r1.PolicyKey, 1)
			if again.PolicyStatus != 1 || again.PolicyKey != r2.PolicyKey || again.Changed {
				t.Fatalf("repeated phase 2 = %+v, want key %d unchanged", again, r2.PolicyKey)
			}
		})
	}
}

func TestProvisionPolicyChange(t *testing.T) {
	c := mustParse(t, gateDoc)
	p := newPhone(t, c, "14.1")
	p.handshake()
	// The administrator tightens the policy and reloads.
	p.c = mustParse(t, gateDoc+"\n[policies.other]\nAllowCamera = false\n")
	if d := p.gate("Sync"); d.Outcome != Allow {
		t.Fatalf("an unrelated change made the key stale: %+v", d)
	}
	p.c = mustParse(t, replace(gateDoc, "MinDevicePasswordLength = 6", "MinDevicePasswordLength = 8"))
	if d := p.gate("Sync"); d.Outcome != NeedProvision || d.Status != StatusPolicyRefresh {
		t.Fatalf("changed policy: %+v, want 143", d)
	}
	old := p.key
	p.handshake()
	if p.key == old {
		t.Error("re-provisioning kept the old key")
	}
	if d := p.gate("Sync"); d.Outcome != Allow {
		t.Fatalf("after re-provisioning: %+v", d)
	}
}

// replace is strings.Replace that fails loudly when nothing matched.
func replace(s, old, new string) string {
	for i := 0; i+len(old) <= len(s); i++ {
		if s[i:i+len(old)] == old {
			return s[:i] + new + s[i+len(old):]
		}
	}
	panic("replace: " + old + " not found")
}

// A policy changed between phase 1 and phase 2: the final key is bound to
// the document the client acknowledged, so it is stale at once.
func TestProvisionPolicyChangedMidHandshake(t *testing.T) {
	p := newPhone(t, mustParse(t, gateDoc), "16.1")
	r1 := p.phase1()
	p.c = mustParse(t, replace(gateDoc, "MinDevicePasswordLength = 6", "MinDevicePasswordLength = 8"))
	r2 := p.phase2(r1.PolicyKey, 1)
	p.key = r2.PolicyKey
	if d := p.gate("Sync"); d.Status != StatusPolicyRefresh {
		t.Fatalf("got %+v, want 143", d)
	}
}

func TestProvisionAcknowledgements(t *testing.T) {
	strictDoc := gateDoc
	lenient := replace(gateDoc, "[policies.strict]", "[policies.strict]\nallow_unapplied = true")
	byod := "[provisioning]\nrequired = false\n[policies.strict]\nMinDevicePasswordLength = 6\n[users]\n\"u@example.com\" = \"strict\"\n"
	tests := []struct {
		name       string
		doc        string
		wrongKey   bool
		status     int
		wantTop    int
		wantPolicy int
		wantKey    bool
	}{
		{"applied", strictDoc, false, 1, 1, 1, true},
		{"partially applied, strict", strictDoc, false, 2, 1, 4, false},
		{"not applied, strict", strictDoc, false, 3, 1, 4, false},
		{"third party, strict", strictDoc, false, 4, 1, 4, false},
		{"partially applied, allow_unapplied", lenient, false, 2, 1, 1, true},
		{"not applied, allow_unapplied", lenient, false, 3, 1, 1, true},
		{"not applied, byod", byod, false, 3, 1, 1, true},
		{"unknown status", strictDoc, false, 9, 2, 0, false},
		{"wrong key", strictDoc, true, 1, 1, 5, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPhone(t, mustParse(t, tt.doc), "14.1")
			r1 := p.phase1()
			key := r1.PolicyKey
			if tt.wrongKey {
				key++
			}
			r := p.phase2(key, tt.status)
			if r.Status != tt.wantTop || r.PolicyStatus != tt.wantPolicy || (r.PolicyKey != 0) != tt.wantKey {
				t.Fatalf("phase 2 = %+v, want Status %d, policy Status %d, key %v", r, tt.wantTop, tt.wantPolicy, tt.wantKey)
			}
			if !tt.wantKey && p.dev.Keys.Current != 0 {
				t.Fatalf("a refused acknowledgement stored a final key: %+v", p.dev.Keys)
			}
		})
	}
}

func TestProvisionBadRequests(t *testing.T) {
	p := newPhone(t, mustParse(t, gateDoc), "14.1")
	if r := p.provision(ProvisionRequest{}); r.Status != ProvisionProtocolError || r.PolicyStatus != 0 {
		t.Errorf("no Policies: %+v", r)
	}
	r := p.provision(ProvisionRequest{HasPolicy: true, PolicyType: "MS-WAP-Provisioning-XML"})
	if r.Status != 1 || r.PolicyStatus != PolicyUnknownType || r.PolicyKey != 0 || r.Policy != nil || r.PolicyType != "MS-WAP-Provisioning-XML" {
		t.Errorf("2.5 policy type: %+v", r)
	}
	// Phase 2 without a phase 1.
	if r := p.phase2(1234, 1); r.PolicyStatus != PolicyWrongKey {
		t.Errorf("phase 2 first: %+v", r)
	}
	// Phase 2 with Status but no key.
	p.phase1()
	if r := p.phase2(0, 1); r.PolicyStatus != PolicyWrongKey {
		t.Errorf("phase 2 without key: %+v", r)
	}
}

func TestProvisionAccess(t *testing.T) {
	tests := []struct {
		name    string
		version string
		access  Action
		http    int
		status  int
		policy  int
	}{
		{"blocked 12.1", "12.1", ActionBlock, http.StatusForbidden, 0, 0},
		{"blocked 14.1", "14.1", ActionBlock, 0, StatusDeviceBlocked, 0},
		{"quarantined 12.1", "12.1", ActionQuarantine, http.StatusForbidden, 0, 0},
		{"quarantined 14.1 provisions", "14.1", ActionQuarantine, 0, 1, 1},
		{"allowed 14.1", "14.1", ActionAllow, 0, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPhone(t, mustParse(t, gateDoc), tt.version)
			p.dev.Access = tt.access
			r := p.phase1()
			if r.HTTPStatus != tt.http || r.Status != tt.status || r.PolicyStatus != tt.policy {
				t.Fatalf("phase 1 = %+v", r)
			}
			if tt.policy == 0 && (r.Changed || r.PolicyKey != 0 || r.DeviceInformationStatus != 0 && r.HTTPStatus != 0) {
				t.Fatalf("refused Provision handed out state: %+v", r)
			}
		})
	}
}

func TestProvisionBYODSendsPermissivePolicy(t *testing.T) {
	c := mustParse(t, "default_policy = \"strict\"\n[provisioning]\nrequired = false\n[policies.strict]\nMinDevicePasswordLength = 6\n")
	p := newPhone(t, c, "16.1")
	r := p.phase1()
	if r.Policy == nil || r.Policy.Name != DefaultPolicyName || r.Policy.Settings.MinDevicePasswordLength != nil {
		t.Fatalf("byod phase 1 sent %+v", r.Policy)
	}
}

func TestRemoteWipe(t *testing.T) {
	for _, tt := range []struct {
		name        string
		version     string
		accountOnly bool
		ack         int
		wantState   WipeState
	}{
		{"12.1 full wipe", "12.1", false, 1, WipeDone},
		{"14.1 full wipe", "14.1", false, 1, WipeDone},
		{"16.1 full wipe fails", "16.1", false, 2, WipeFailed},
		{"16.1 account only", "16.1", true, 1, WipeDone},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPhone(t, mustParse(t, gateDoc), tt.version)
			p.handshake()
			p.dev.Wipe, p.dev.WipeAccountOnly = WipePending, tt.accountOnly

			d := p.gate("Ping")
			if d.Outcome != WipeRequested || d.HTTPStatus != 449 {
				t.Fatalf("gate with wipe pending: %+v", d)
			}
			r := p.phase1()
			if r.RemoteWipe == tt.accountOnly || r.AccountOnlyRemoteWipe != tt.accountOnly || r.PolicyStatus != 1 {
				t.Fatalf("phase 1 with wipe pending: %+v", r)
			}
			if p.dev.Wipe != WipeSent {
				t.Fatalf("wipe state after directive = %v", p.dev.Wipe)
			}
			// The directive is repeated until the phone acknowledges.
			if d := p.gate("FolderSync"); d.Outcome != WipeRequested {
				t.Fatalf("gate with wipe sent: %+v", d)
			}
			r = p.phase2(r.PolicyKey, 1)
			if r.RemoteWipe == tt.accountOnly || r.AccountOnlyRemoteWipe != tt.accountOnly {
				t.Fatalf("phase 2 with wipe sent: %+v", r)
			}
			// Android acknowledges without Policies.
			r = p.provision(ProvisionRequest{WipeStatus: tt.ack})
			if r.Status != 1 || r.PolicyStatus != 0 || r.RemoteWipe || r.AccountOnlyRemoteWipe || p.dev.Wipe != tt.wantState {
				t.Fatalf("acknowledgement: %+v, state %v", r, p.dev.Wipe)
			}
			// From now on the device is refused, Provision included.
			if d := p.gate("Sync"); d.Outcome != Blocked {
				t.Fatalf("gate after wipe: %+v", d)
			}
			if r := p.phase1(); r.PolicyStatus != 0 || r.Changed || (r.HTTPStatus != 403 && r.Status != StatusDeviceBlocked) {
				t.Fatalf("Provision after wipe: %+v", r)
			}
		})
	}
}

func TestRemoteWipeEdgeCases(t *testing.T) {
	c := mustParse(t, gateDoc)
	// A wipe acknowledgement nobody asked for changes nothing.
	p := newPhone(t, c, "14.1")
	if r := p.provision(ProvisionRequest{WipeStatus: 1}); r.Status != 1 || r.Changed {
		t.Fatalf("stray acknowledgement: %+v", r)
	}
	// A wipe due and a Provision without Policies: the directive alone.
	p.dev.Wipe = WipePending
	r := p.provision(ProvisionRequest{})
	if r.Status != 1 || !r.RemoteWipe || r.PolicyStatus != 0 || p.dev.Wipe != WipeSent {
		t.Fatalf("bare Provision with wipe due: %+v", r)
	}
	// An account-only wipe for a client older than 16.1 is never turned
	// into a full wipe.
	p = newPhone(t, c, "14.1")
	p.dev.Wipe, p.dev.WipeAccountOnly = WipePending, true
	r = p.phase1()
	if r.RemoteWipe || r.AccountOnlyRemoteWipe || r.Status != StatusDeviceBlocked || r.Changed {
		t.Fatalf("account-only wipe on 14.1: %+v", r)
	}
	// A blocked device with a wipe due still receives it.
	p = newPhone(t, c, "12.1")
	p.dev.Access, p.dev.Wipe = ActionBlock, WipePending
	if r := p.phase1(); !r.RemoteWipe || r.HTTPStatus != 0 {
		t.Fatalf("blocked device with wipe due: %+v", r)
	}
}
