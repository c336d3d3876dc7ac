package policy

import (
	"net/http"
	"strings"
)

// WipeState is where a device is in the remote-wipe flow (digest §3.1,
// checklist item 18).
type WipeState uint8

const (
	// WipeNone: no wipe requested.
	WipeNone WipeState = iota
	// WipePending: an administrator asked for a wipe; the device has not
	// yet been told.
	WipePending
	// WipeSent: a Provision answer carried the wipe directive; waiting for
	// the device's acknowledgement. Every request keeps getting the wipe.
	WipeSent
	// WipeDone: the device acknowledged with Status 1. It is refused from
	// then on; deleting the device record is the way back.
	WipeDone
	// WipeFailed: the device acknowledged with Status 2. It is refused, like
	// WipeDone, until an administrator decides.
	WipeFailed
)

// String names the state for logs and the admin API.
func (w WipeState) String() string {
	switch w {
	case WipePending:
		return "pending"
	case WipeSent:
		return "sent"
	case WipeDone:
		return "wiped"
	case WipeFailed:
		return "failed"
	}
	return "none"
}

// DeviceState is what the gateway has stored about a device, reduced to what
// policy needs. The gateway maps its device record onto it.
type DeviceState struct {
	// Access is an administrator's decision for this one device (allow,
	// block, quarantine); ActionNone lets the access rules decide.
	Access Action
	// Wipe is the remote-wipe state.
	Wipe WipeState
	// WipeAccountOnly asks for AccountOnlyRemoteWipe (16.1): only the
	// account and its data are removed, not the whole phone.
	WipeAccountOnly bool
	// Keys are the stored policy keys.
	Keys Keys
}

// Command names the gate treats specially. EAS command names are those of
// the Cmd= query parameter (MS-ASHTTP 2.2.1.1.1.2).
const (
	CommandProvision    = "Provision"
	CommandPing         = "Ping"
	CommandOptions      = "OPTIONS"      // the HTTP OPTIONS request
	CommandAutodiscover = "Autodiscover" // POST /autodiscover/autodiscover.xml
)

// Request is one incoming request as the gate sees it.
type Request struct {
	Command   string // Cmd= value, or CommandOptions / CommandAutodiscover
	Version   string // MS-ASProtocolVersion, e.g. "14.1"
	PolicyKey uint32 // X-MS-PolicyKey or the base64 query field; 0 when absent
	User      string // authenticated login
	// DeviceType, UserAgent and Model feed the access rules and the
	// provisioning exemptions; Model is "" until DeviceInformation is known.
	DeviceType string
	UserAgent  string
	Model      string
	Device     DeviceState
}

// Outcome is the kind of answer the gate gives.
type Outcome uint8

const (
	// Allow: run the command.
	Allow Outcome = iota
	// NeedProvision: the device must run Provision first.
	NeedProvision
	// WipeRequested: a remote wipe is due; the device must run Provision,
	// which delivers the wipe directive.
	WipeRequested
	// Blocked: the device is refused.
	Blocked
	// Quarantined: the device waits for an administrator.
	Quarantined
)

// String names the outcome for logs.
func (o Outcome) String() string {
	switch o {
	case NeedProvision:
		return "provision"
	case WipeRequested:
		return "wipe"
	case Blocked:
		return "blocked"
	case Quarantined:
		return "quarantined"
	}
	return "allow"
}

// Common status codes of MS-ASCMD 2.2.2 used by the gate (14.0 and later).
const (
	StatusDeviceBlocked      = 129 // DeviceIsBlockedForThisUser
	StatusRemoteWipe         = 140 // RemoteWipeRequested
	StatusDeviceNotProvision = 142 // DeviceNotProvisioned
	StatusPolicyRefresh      = 143 // PolicyRefresh
	StatusInvalidPolicyKey   = 144 // InvalidPolicyKey
)

// StatusRetryProvision is HTTP 449 "Retry after sending a PROVISION
// command" (MS-ASHTTP 2.2.2.1.1).
const StatusRetryProvision = 449

// Decision is the gate's answer. When Outcome is Allow the command runs and
// HTTPStatus and Status are 0. Otherwise the gateway answers without running
// the command: HTTPStatus is the status line, and when Status is non-zero
// (14.0 and later) the body is the command's response element holding only
// that top-level Status, e.g. <FolderSync><Status>142</Status></FolderSync>.
type Decision struct {
	Outcome    Outcome
	HTTPStatus int
	Status     int
	// Access is the access verdict that applied and Rule the name of the
	// rule that gave it ("device" for a per-device override, "" for the
	// default action).
	Access Action
	Rule   string
	// Reason says why, for the log (never shown to the phone).
	Reason string
}

// exemptFromKey reports whether a command never needs a policy key: AOSP
// sends no key on Ping, and OPTIONS, Autodiscover and Provision itself come
// before there is a key (digest §1.4).
func exemptFromKey(cmd string) bool {
	for _, c := range []string{CommandProvision, CommandPing, CommandOptions, CommandAutodiscover} {
		if strings.EqualFold(cmd, c) {
			return true
		}
	}
	return false
}

// deviceAccess resolves the access verdict: a per-device override beats the
// rules.
func (c *Config) deviceAccess(user, deviceType, userAgent, model string, d DeviceState) (Action, string) {
	if d.Access != ActionNone {
		return d.Access, "device"
	}
	return c.Access(user, deviceType, userAgent, model)
}

// Gate decides whether a request may run. The checks, in order:
//
//  1. OPTIONS and Autodiscover always pass: they carry no device identity.
//  2. A device that was wiped (or whose wipe failed) is refused, and so is
//     one with an account-only wipe due that speaks less than 16.1: it
//     cannot be told to remove just the account, and a full wipe is never
//     sent in its place.
//  3. A pending wipe sends every command except Provision (Ping included)
//     to Provision, which carries the wipe directive. This comes before
//     access: a wipe must reach a blocked or quarantined phone too.
//  4. Blocked devices are refused, Provision included, because AOSP answers
//     a refusal by provisioning again (digest checklist 18).
//  5. Quarantined devices are refused, except that from 14.0 they may
//     Provision (so their DeviceInformation reaches the administrator).
//  6. Provision and Ping never need a key. Neither do exempt device types
//     (Outlook desktop), nor anybody when provisioning is switched off.
//  7. Otherwise the header key must be the device's final key, issued for
//     the policy the device has now.
//
// How each refusal looks on the wire, and why:
//
//   - Up to 12.1 there is no in-body status: 449 for provisioning and wipe,
//     403 for blocked and quarantined.
//   - From 14.0 provisioning problems are Status 142 (no key sent), 144 (a
//     key we did not issue, or a temporary one) or 143 (the key is ours but
//     the policy changed since), and a pending wipe is 140. These go out
//     with HTTP 449 rather than 200: Horde does the same, because some
//     clients claim 14.x yet only react to the 449, and every client from
//     2.5 on treats 449 as "run Provision".
//   - Blocked and quarantined devices get HTTP 200 with Status 129 from
//     14.0: a 403 would make AOSP/Gmail re-provision in a loop. Quarantine
//     uses 129 too; 141 ("legacy device on a strict policy") would tell the
//     user the wrong story, and there is no "quarantined" status.
func (c *Config) Gate(r Request) Decision {
	if strings.EqualFold(r.Command, CommandOptions) || strings.EqualFold(r.Command, CommandAutodiscover) {
		return Decision{Outcome: Allow, Access: ActionAllow, Reason: "no device identity"}
	}
	v := parseVersion(r.Version)
	isProvision := strings.EqualFold(r.Command, CommandProvision)
	access, rule := c.deviceAccess(r.User, r.DeviceType, r.UserAgent, r.Model, r.Device)
	d := Decision{Access: access, Rule: rule}

	refuse := func(o Outcome, reason string) Decision {
		d.Outcome, d.Reason = o, reason
		if v.hasBodyStatus() {
			d.HTTPStatus, d.Status = http.StatusOK, StatusDeviceBlocked
		} else {
			d.HTTPStatus = http.StatusForbidden
		}
		return d
	}
	provision := func(o Outcome, status int, reason string) Decision {
		d.Outcome, d.Reason, d.HTTPStatus = o, reason, StatusRetryProvision
		if v.hasBodyStatus() {
			d.Status = status
		}
		return d
	}

	switch w := r.Device.Wipe; {
	case w == WipeDone:
		return refuse(Blocked, "device was remotely wiped")
	case w == WipeFailed:
		return refuse(Blocked, "device reported a failed remote wipe")
	case (w == WipePending || w == WipeSent) && r.Device.WipeAccountOnly && v < v161:
		return refuse(Blocked, "account-only wipe due but the client speaks "+r.Version+", not 16.1")
	}
	if w := r.Device.Wipe; w == WipePending || w == WipeSent {
		if isProvision {
			d.Reason = "Provision delivers the pending wipe"
			return d
		}
		return provision(WipeRequested, StatusRemoteWipe, "remote wipe pending")
	}
	if access == ActionBlock {
		return refuse(Blocked, "access: block")
	}
	if access == ActionQuarantine && !(isProvision && v.hasBodyStatus()) {
		return refuse(Quarantined, "access: quarantine")
	}
	if exemptFromKey(r.Command) {
		d.Reason = r.Command + " needs no policy key"
		return d
	}
	if !c.required {
		d.Reason = "provisioning not required"
		return d
	}
	if c.Exempt(r.DeviceType, r.UserAgent) {
		d.Reason = "device type or user agent exempt from provisioning"
		return d
	}
	k := r.Device.Keys
	switch {
	case r.PolicyKey == 0:
		return provision(NeedProvision, StatusDeviceNotProvision, "no policy key sent")
	case k.Current == 0 || r.PolicyKey != k.Current:
		return provision(NeedProvision, StatusInvalidPolicyKey, "policy key is not the device's final key")
	case k.CurrentHash != c.PolicyFor(r.User).Hash():
		return provision(NeedProvision, StatusPolicyRefresh, "policy changed since the key was issued")
	}
	d.Reason = "policy key current"
	return d
}
