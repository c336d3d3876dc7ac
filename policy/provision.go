package policy

import "net/http"

// PolicyTypeWBXML is the only PolicyType served: the WBXML EASProvisionDoc
// of 12.0 and later. 2.5's "MS-WAP-Provisioning-XML" gets policy Status 3.
const PolicyTypeWBXML = "MS-EAS-Provisioning-WBXML"

// Provision status values: the top-level Provision Status (MS-ASPROV
// 2.2.2.54.1) and the Policy Status (2.2.2.54.2).
const (
	ProvisionSuccess       = 1
	ProvisionProtocolError = 2
	ProvisionServerError   = 3

	PolicySuccess     = 1
	PolicyNone        = 2 // no policy for this client
	PolicyUnknownType = 3 // unknown PolicyType
	PolicyRefused     = 4 // policy data corrupt, or the acknowledgement refused
	PolicyWrongKey    = 5 // the client acknowledged a key we did not hand out
)

// ProvisionRequest is a parsed Provision command (MS-ASPROV 2.2.2.44) plus
// what the gateway knows about the device.
type ProvisionRequest struct {
	Version    string // MS-ASProtocolVersion
	User       string
	DeviceType string
	UserAgent  string
	Model      string // from this request's DeviceInformation, if any
	Device     DeviceState

	// DeviceInformation is true when the request carried
	// settings:DeviceInformation (14.1+); the answer then echoes its Status.
	DeviceInformation bool
	// HasPolicy is true when the request carried Policies > Policy.
	HasPolicy bool
	// PolicyType, PolicyKey and PolicyStatus are the Policy children; the
	// key and status are 0 when absent (phase 1 has neither).
	PolicyType   string
	PolicyKey    uint32
	PolicyStatus int
	// WipeStatus is RemoteWipe > Status or AccountOnlyRemoteWipe > Status
	// (1 wiped, 2 failed), 0 when the request has no wipe acknowledgement.
	WipeStatus int
}

// ProvisionResult is the answer to a Provision command and the device state
// to store afterwards.
type ProvisionResult struct {
	// HTTPStatus is 0 for a normal answer (HTTP 200 with the Provision
	// body). http.StatusForbidden means: answer 403 with no body (a blocked
	// or quarantined device up to 12.1).
	HTTPStatus int
	// Status is the top-level Provision Status: ProvisionSuccess,
	// ProvisionProtocolError, or StatusDeviceBlocked (129) from 14.0.
	Status int
	// DeviceInformationStatus is 1 when the request's DeviceInformation is
	// acknowledged (settings:DeviceInformation > settings:Status), else 0.
	DeviceInformationStatus int
	// PolicyStatus is the Policy Status; 0 means the answer has no
	// Policies element.
	PolicyStatus int
	// PolicyType echoes the request's PolicyType.
	PolicyType string
	// PolicyKey is the key to send (temporary after phase 1, final after
	// phase 2), 0 for none.
	PolicyKey uint32
	// Policy is the policy whose EASProvisionDoc goes in Data (phase 1), or
	// nil when the answer carries no document.
	Policy *Policy
	// RemoteWipe and AccountOnlyRemoteWipe add the wipe directive.
	RemoteWipe            bool
	AccountOnlyRemoteWipe bool
	// Device is the device state after this request; Changed says whether
	// it differs from the request's and must be stored.
	Device  DeviceState
	Changed bool
	// Reason says what happened, for the log.
	Reason string
}

// Provision runs the server side of the two-phase provisioning handshake and
// the remote wipe (MS-ASPROV 3.2.5, digest §3.1):
//
//   - Wipe acknowledgement (RemoteWipe/AccountOnlyRemoteWipe > Status):
//     records WipeDone (1) or WipeFailed (2) and answers Status 1. From then
//     on Gate refuses the device. An acknowledgement with no wipe pending is
//     answered Status 1 and changes nothing.
//   - Refusal: what Gate refuses for Provision (blocked; quarantined up to
//     12.1; wiped) gets 403 up to 12.1, Status 129 from 14.0.
//   - Phase 1 (Policy without Status): a fresh temporary key, stored as
//     Keys.Pending with the hash of the policy sent, and the
//     EASProvisionDoc. With provisioning switched off the permissive policy
//     is sent whatever the assignment.
//   - Phase 2 (Policy with PolicyKey and Status): the key must be
//     Keys.Pending, else policy Status 5. Status 1 — or 2, 3, 4 when the
//     policy allows unapplied acknowledgements or provisioning is off —
//     earns a new final key, stored as Keys.Current with the pending hash.
//     Otherwise policy Status 4 and no key. Repeating an acknowledgement
//     that already succeeded returns the same final key.
//   - A due wipe is added to every non-refused answer: RemoteWipe, or
//     AccountOnlyRemoteWipe for a 16.1 client when only the account is to
//     go (Gate refuses older clients in that case: a full wipe is never sent
//     in place of an account-only one). WipePending becomes WipeSent.
func (c *Config) Provision(r ProvisionRequest) ProvisionResult {
	res := ProvisionResult{Status: ProvisionSuccess, Device: r.Device}
	if r.DeviceInformation {
		res.DeviceInformationStatus = 1
	}

	if r.WipeStatus != 0 {
		switch r.Device.Wipe {
		case WipePending, WipeSent:
			if r.WipeStatus == 1 {
				res.Device.Wipe, res.Reason = WipeDone, "device acknowledged the remote wipe"
			} else {
				res.Device.Wipe, res.Reason = WipeFailed, "device reported that the remote wipe failed"
			}
			res.Changed = true
		default:
			res.Reason = "wipe acknowledgement without a wipe requested; ignored"
		}
		return res
	}

	g := c.Gate(Request{
		Command: CommandProvision, Version: r.Version, User: r.User,
		DeviceType: r.DeviceType, UserAgent: r.UserAgent, Model: r.Model, Device: r.Device,
	})
	if g.Outcome != Allow {
		res.Reason = g.Reason
		if g.HTTPStatus == http.StatusForbidden {
			res.HTTPStatus, res.Status, res.DeviceInformationStatus = http.StatusForbidden, 0, 0
		} else {
			res.Status = g.Status
		}
		return res
	}
	wipe := r.Device.Wipe == WipePending || r.Device.Wipe == WipeSent
	p := c.provisionPolicy(r.User)

	switch {
	case !r.HasPolicy && !wipe:
		res.Status, res.Reason = ProvisionProtocolError, "Provision without Policies"
	case !r.HasPolicy:
		res.Reason = "wipe directive"
	case r.PolicyType != PolicyTypeWBXML:
		res.PolicyType, res.PolicyStatus = r.PolicyType, PolicyUnknownType
		res.Reason = "unsupported PolicyType " + r.PolicyType
	case r.PolicyStatus == 0:
		key := NewPolicyKey()
		res.Device.Keys.Pending, res.Device.Keys.PendingHash = key, p.Hash()
		res.Changed = true
		res.PolicyType, res.PolicyStatus, res.PolicyKey, res.Policy = r.PolicyType, PolicySuccess, key, p
		res.Reason = "phase 1: temporary key and policy " + p.Name
	default:
		res.PolicyType = r.PolicyType
		c.acknowledge(r, p, &res)
	}

	if wipe && res.Status == ProvisionSuccess {
		if r.Device.WipeAccountOnly {
			res.AccountOnlyRemoteWipe = true
		} else {
			res.RemoteWipe = true
		}
		if res.Device.Wipe == WipePending {
			res.Device.Wipe, res.Changed = WipeSent, true
		}
		res.Reason += "; wipe directive sent"
	}
	return res
}

// acknowledge is phase 2 of Provision.
func (c *Config) acknowledge(r ProvisionRequest, p *Policy, res *ProvisionResult) {
	k := r.Device.Keys
	switch {
	case r.PolicyKey != 0 && r.PolicyKey == k.Acked && k.Current != 0:
		res.PolicyStatus, res.PolicyKey = PolicySuccess, k.Current
		res.Reason = "phase 2 repeated: same final key"
	case r.PolicyKey == 0 || r.PolicyKey != k.Pending:
		res.PolicyStatus = PolicyWrongKey
		res.Reason = "phase 2 with a key that is not the temporary key"
	case r.PolicyStatus < 1 || r.PolicyStatus > 4:
		res.Status, res.PolicyType = ProvisionProtocolError, ""
		res.Reason = "phase 2 with an unknown acknowledgement status"
	case r.PolicyStatus != 1 && c.required && !p.AllowUnapplied:
		res.PolicyStatus = PolicyRefused
		res.Reason = "client did not apply the policy, which the policy requires"
	default:
		final := NewPolicyKey()
		for final == k.Pending {
			final = NewPolicyKey()
		}
		res.Device.Keys = Keys{Current: final, CurrentHash: k.PendingHash, Acked: k.Pending}
		res.Changed = true
		res.PolicyStatus, res.PolicyKey = PolicySuccess, final
		res.Reason = "phase 2: final key issued"
	}
}
