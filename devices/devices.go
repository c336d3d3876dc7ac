// Package devices is the gateway's memory of the phones it talks to: one
// record per device partnership (user plus DeviceId), the SyncKey-guarded
// state of every collection the device syncs, the last Sync and Ping request
// it sent (which EAS lets it repeat by sending an empty body), and the
// counters that slow down password guessing.
//
// The package holds only the contract, Store, and its value types; it
// imports nothing but the standard library. devices/redisstore keeps the data
// in Redis (standalone or Cluster) so that several gateway instances share it;
// devices/boltstore keeps it in one bbolt file for a single-node install.
// devices/storetest is the conformance suite both pass.
//
// # Sync state and the SyncKey rule
//
// MS-ASCMD 2.2.3.166.4 (Sync SyncKey) and 2.2.3.166.2 (FolderSync SyncKey):
// every successful response carries a new key, N+1, and the server must
// still accept N once more, because the phone may never have received the
// response that carried N+1 and will simply send N again. A Store therefore
// keeps, per collection, the current state (key N+1) and the previous one
// (key N), and GetSyncState finds either by key.
//
// The sync engine owns the content of a state (SyncState.Data is opaque
// here); the Store owns the keys and makes every change a compare-and-set:
//
//	base, err := s.GetSyncState(ctx, user, dev, coll, clientKey) // ErrNotFound: Status 3
//	next := &devices.SyncState{Key: newKey, Data: computed}
//	err = s.PutSyncState(ctx, user, dev, coll, base, next)      // ErrConflict: lost a race
//
// PutSyncState succeeds only if nothing was written to the collection since
// base was read (SyncState.Revision, a token the store changes on every
// write). Then:
//
//   - base was the current state (the normal advance): the current state
//     becomes the previous one and next becomes current.
//   - base was the previous state (the phone repeated key N): the current
//     state, whose response the phone never saw, is dropped; the previous
//     state stays and next becomes current.
//   - base is nil (SyncKey 0, MS-ASCMD 2.2.3.166.4: the client starts over):
//     all state of the collection is replaced by next, with no previous.
//
// The revision check is what makes two concurrent requests with the same key
// safe: both read the same revision, the first write changes it, the second
// gets ErrConflict. A key alone could not tell a retry of N (which must
// win) from a second, concurrent advance from N (which must lose), because
// after the first advance both look like "N is the previous key".
//
// Keys are uint64 values the engine chooses; the store only compares them
// and rejects 0 (reserved for "start over") and next.Key == base.Key. They
// need not be consecutive: an engine that wants keys of a later partnership
// never to equal keys of an earlier one can start each chain at a random
// value, the way Z-Push and Horde prefix their counters with a UUID.
//
// The folder hierarchy (FolderSync) uses the same mechanism under the
// collection id HierarchyCollection.
//
// # Device records
//
// A Device is read whole (GetDevice, ListDevices) and changed by a function
// applied atomically to the stored record (UpdateDevice, UpsertDevice): the
// store reads the record, calls the function on a copy and writes the result
// only if nobody else wrote in between, retrying otherwise. That keeps
// unrelated writers (the request path touching LastSeen, the admin API
// blocking a device, Provision storing a policy key) from losing each
// other's fields without a method per field.
//
// Device ids are case-insensitive (the digest §1.2, as in Z-Push): every
// method lower-cases the id it is given (NormalizeID). User names are used
// exactly as given; the caller normalises them.
package devices

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrNotFound reports that the device, sync state, cached request or other
// item asked for does not exist.
var ErrNotFound = errors.New("devices: not found")

// ErrConflict reports that a compare-and-set lost: the sync state changed
// since it was read, or a device record kept changing under UpdateDevice
// beyond the store's retry budget.
var ErrConflict = errors.New("devices: conflict")

// ErrInvalid reports an argument the store refuses: an empty user or device
// id, a SyncKey of 0 where a real key is needed, or a function that tried to
// change a device's identity.
var ErrInvalid = errors.New("devices: invalid argument")

// HierarchyCollection is the collection id under which the FolderSync
// hierarchy state is kept (MS-ASCMD 2.2.3.166.2). No folder ServerId is
// empty, so it cannot clash with a real collection.
const HierarchyCollection = ""

// Kinds of cached request (PutCachedRequest). MS-ASCMD 2.2.2.20 (Sync) lets a
// 12.1+ client send an empty or Partial Sync meaning "as last time";
// MS-ASCMD 2.2.2.13 (Ping) lets it send an empty Ping meaning the same.
const (
	RequestSync = "sync"
	RequestPing = "ping"
)

// AccessState says whether a device may use the gateway.
type AccessState uint8

// Access states. The zero value allows access.
const (
	AccessAllowed     AccessState = iota // normal operation
	AccessBlocked                        // refused: HTTP 403, or status 129 from 14.0
	AccessQuarantined                    // waiting for an administrator's decision
	AccessApproved                       // allowed by an administrator: access rules no longer apply
)

var accessNames = [...]string{"allowed", "blocked", "quarantined", "approved"}

// String returns "allowed", "blocked", "quarantined" or "approved".
func (a AccessState) String() string { return stateString(accessNames[:], "AccessState", a) }

// MarshalText encodes the state as its String form.
func (a AccessState) MarshalText() ([]byte, error) {
	return marshalState(accessNames[:], "access state", a)
}

// UnmarshalText decodes a state from its String form.
func (a *AccessState) UnmarshalText(b []byte) error {
	return unmarshalState(accessNames[:], "access state", b, a)
}

// stateString returns the name of v, or typ(v) for a value without one.
func stateString[T ~uint8](names []string, typ string, v T) string {
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("%s(%d)", typ, uint8(v))
}

// marshalState encodes v as its name; what names the kind of state in
// the error for a value without one.
func marshalState[T ~uint8](names []string, what string, v T) ([]byte, error) {
	if int(v) >= len(names) {
		return nil, fmt.Errorf("%w: %s %d", ErrInvalid, what, uint8(v))
	}
	return []byte(names[v]), nil
}

// unmarshalState decodes the name b into *v.
func unmarshalState[T ~uint8](names []string, what string, b []byte, v *T) error {
	for i, n := range names {
		if string(b) == n {
			*v = T(i)
			return nil
		}
	}
	return fmt.Errorf("%w: %s %q", ErrInvalid, what, b)
}

// WipeState is where a device is in the remote-wipe exchange of MS-ASPROV
// 3.1.5.2: an administrator asks, the next Provision response carries
// RemoteWipe (or AccountOnlyRemoteWipe, 16.1), and the device acknowledges
// with a status.
type WipeState uint8

// Wipe states. The zero value means no wipe was asked for.
const (
	WipeNone               WipeState = iota
	WipePending                      // full wipe asked for, not yet acknowledged
	WipePendingAccountOnly           // AccountOnlyRemoteWipe asked for (16.1), not yet acknowledged
	WipeAcknowledged                 // the device reported a RemoteWipe status; see Device.WipeStatus
)

var wipeNames = [...]string{"none", "pending", "pending-account-only", "acknowledged"}

// String returns "none", "pending", "pending-account-only" or "acknowledged".
func (w WipeState) String() string { return stateString(wipeNames[:], "WipeState", w) }

// Pending reports whether a wipe (full or account-only) waits to be sent.
func (w WipeState) Pending() bool { return w == WipePending || w == WipePendingAccountOnly }

// MarshalText encodes the state as its String form.
func (w WipeState) MarshalText() ([]byte, error) {
	return marshalState(wipeNames[:], "wipe state", w)
}

// UnmarshalText decodes a state from its String form.
func (w *WipeState) UnmarshalText(b []byte) error {
	return unmarshalState(wipeNames[:], "wipe state", b, w)
}

// DeviceInfo is what the device reports about itself in
// Settings > DeviceInformation > Set (MS-ASCMD 2.2.3.47), sent in Settings
// or, from 14.1, inside the first Provision.
type DeviceInfo struct {
	Model             string `json:"model,omitempty"`
	IMEI              string `json:"imei,omitempty"`
	FriendlyName      string `json:"friendlyName,omitempty"`
	OS                string `json:"os,omitempty"`
	OSLanguage        string `json:"osLanguage,omitempty"`
	PhoneNumber       string `json:"phoneNumber,omitempty"`
	UserAgent         string `json:"userAgent,omitempty"`
	MobileOperator    string `json:"mobileOperator,omitempty"`
	EnableOutboundSMS bool   `json:"enableOutboundSMS,omitempty"`
}

// Device is the record of one device partnership: one user on one device.
// Stores encode it as JSON with the tags below.
type Device struct {
	User string `json:"user"` // the authenticated user, as the gateway normalised it
	ID   string `json:"id"`   // DeviceId, lower-cased (NormalizeID)

	Type            string    `json:"type,omitempty"`            // DeviceType from the query
	UserAgent       string    `json:"userAgent,omitempty"`       // the HTTP User-Agent header
	ProtocolVersion string    `json:"protocolVersion,omitempty"` // MS-ASProtocolVersion last used
	FirstSeen       time.Time `json:"firstSeen"`                 // set by the store on creation if left zero
	LastSeen        time.Time `json:"lastSeen"`                  // set by the store on creation if left zero

	// Info is the device's own Settings DeviceInformation report.
	Info DeviceInfo `json:"info"`

	// Provisioning (MS-ASPROV 3.1.5.1): PolicyKey is the final key the
	// device must present; PendingPolicyKey the temporary key handed out in
	// phase 1 and not yet acknowledged (0 when none). PolicyStatus is the
	// status the device reported with its acknowledgement (1 applied,
	// 2 partially, 3 not applied, 4 third party). PolicyName names the
	// policy the key was issued for. PolicyHash and PendingPolicyHash
	// identify the policy documents PolicyKey and PendingPolicyKey were
	// issued for: when the device's policy changes, its key is stale
	// (Status 143). AckedPolicyKey is the temporary key PolicyKey was issued
	// for, so a repeated phase-2 acknowledgement (the first answer was lost)
	// gets the same final key again.
	PolicyName        string `json:"policyName,omitempty"`
	PolicyKey         uint32 `json:"policyKey,omitempty"`
	PolicyHash        string `json:"policyHash,omitempty"`
	PendingPolicyKey  uint32 `json:"pendingPolicyKey,omitempty"`
	PendingPolicyHash string `json:"pendingPolicyHash,omitempty"`
	AckedPolicyKey    uint32 `json:"ackedPolicyKey,omitempty"`
	PolicyStatus      int    `json:"policyStatus,omitempty"`

	Access       AccessState `json:"access"`
	AccessReason string      `json:"accessReason,omitempty"` // why blocked or quarantined, for the admin

	// Remote wipe (MS-ASPROV 3.1.5.2). WipeRequested is when an
	// administrator asked; WipeAcknowledged and WipeStatus (1 wiped,
	// 2 failed) record the device's answer.
	Wipe             WipeState `json:"wipe"`
	WipeRequested    time.Time `json:"wipeRequested,omitzero"`
	WipeAcknowledged time.Time `json:"wipeAcknowledged,omitzero"`
	WipeStatus       int       `json:"wipeStatus,omitempty"`

	// Revision counts the writes of this record: 0 for a record not yet
	// stored (what UpsertDevice hands its function on creation), then
	// 1, 2, … The store sets it; changes made by callers are ignored.
	Revision uint64 `json:"revision"`
}

// SyncState is one stored state of a collection: the SyncKey that answers
// to it and the sync engine's data for it. See the package documentation.
type SyncState struct {
	Key  uint64 // the SyncKey; never 0
	Data []byte // owned by the sync engine; the store keeps it byte for byte

	// Updated is when the store last wrote the collection (its own clock),
	// that is when the current state was stored. It is set by the store;
	// the value passed to PutSyncState is ignored.
	Updated time.Time

	// Revision is the collection's write token at the moment the state was
	// read: PutSyncState succeeds only if it is still the same. It is set by
	// the store; pass a state returned by GetSyncState back unchanged.
	Revision uint64
}

// Store is the device registry and sync-state store. Implementations are
// safe for concurrent use by many goroutines and, for redisstore, by many
// gateway processes. Every method lower-cases the device id it is given.
// Empty users or device ids are refused with ErrInvalid.
type Store interface {
	// GetDevice returns the device's record, or ErrNotFound.
	GetDevice(ctx context.Context, user, device string) (*Device, error)

	// UpsertDevice applies fn to the device's record and stores the result
	// atomically, creating the record if there is none: fn then gets a
	// Device with only User, ID and Revision 0 set. It returns the record
	// as stored. If fn returns an error nothing is written and that error
	// is returned; if fn changes nothing in a stored record, nothing is
	// written either and Revision stays. fn may run more than once (when
	// another writer got in between) and must not call the Store; it must
	// leave User and ID alone (changing them gives ErrInvalid).
	UpsertDevice(ctx context.Context, user, device string, fn func(*Device) error) (*Device, error)

	// UpdateDevice is UpsertDevice for an existing record only: it returns
	// ErrNotFound, without calling fn, when there is none. The admin API
	// uses it to change access and wipe state.
	UpdateDevice(ctx context.Context, user, device string, fn func(*Device) error) (*Device, error)

	// ListDevices returns the records of one user's devices, or of all
	// users' devices when user is "", sorted by user and then device id.
	ListDevices(ctx context.Context, user string) ([]*Device, error)

	// DeleteDevice forgets the partnership: the record, every sync state
	// and the cached requests of the device. The next contact starts over
	// with Provision and FolderSync 0. It returns ErrNotFound if there was
	// no record (any state found is deleted all the same).
	DeleteDevice(ctx context.Context, user, device string) error

	// GetSyncState returns the collection's state whose Key is key, current
	// or previous, or ErrNotFound.
	GetSyncState(ctx context.Context, user, device, collection string, key uint64) (*SyncState, error)

	// LatestSyncState returns the collection's current state whatever its
	// key (Ping and GetItemEstimate need it), or ErrNotFound if the
	// collection has never been synced.
	LatestSyncState(ctx context.Context, user, device, collection string) (*SyncState, error)

	// PutSyncState stores next as the collection's current state if the
	// collection is still as it was when base was read, and returns
	// ErrConflict otherwise. A nil base resets the collection (SyncKey 0).
	// next.Key must not be 0 nor equal base.Key (ErrInvalid). The rules are
	// in the package documentation.
	PutSyncState(ctx context.Context, user, device, collection string, base, next *SyncState) error

	// DeleteSyncStates deletes the states of the named collections of a
	// device, atomically. Naming none deletes nothing; names without
	// state are ignored.
	DeleteSyncStates(ctx context.Context, user, device string, collections ...string) error

	// SyncCollections returns the ids of the device's collections that have
	// sync state, sorted; HierarchyCollection ("") sorts first.
	SyncCollections(ctx context.Context, user, device string) ([]string, error)

	// PutCachedRequest stores the device's last request of a kind
	// (RequestSync, RequestPing), replacing the one before. A nil or empty
	// body removes it.
	PutCachedRequest(ctx context.Context, user, device, kind string, body []byte) error

	// GetCachedRequest returns the cached request of a kind, or ErrNotFound.
	GetCachedRequest(ctx context.Context, user, device, kind string) ([]byte, error)

	// IncrAuthFailures counts one more failed login under key (the caller
	// builds it, e.g. from user and remote address) and returns the count.
	// The counter lives until ttl has passed without a new failure.
	IncrAuthFailures(ctx context.Context, key string, ttl time.Duration) (int, error)

	// AuthFailures returns the current count under key; 0 if none or
	// expired.
	AuthFailures(ctx context.Context, key string) (int, error)

	// ResetAuthFailures clears the counter under key (after a good login).
	ResetAuthFailures(ctx context.Context, key string) error

	// Close releases the store's connections or file.
	Close() error
}

// NormalizeID returns the form of a device id the stores key on: lower case.
func NormalizeID(id string) string { return strings.ToLower(id) }

// CheckIDs validates a user and device id and returns the normalised device
// id, for Store implementations.
func CheckIDs(user, device string) (string, error) {
	if user == "" {
		return "", fmt.Errorf("%w: empty user", ErrInvalid)
	}
	if device == "" {
		return "", fmt.Errorf("%w: empty device id", ErrInvalid)
	}
	return NormalizeID(device), nil
}

// CheckSyncPut validates the arguments of PutSyncState, for Store
// implementations, and returns the normalised device id as CheckIDs does.
func CheckSyncPut(user, device string, base, next *SyncState) (string, error) {
	id, err := CheckIDs(user, device)
	if err != nil {
		return "", err
	}
	switch {
	case next == nil:
		return "", fmt.Errorf("%w: nil sync state", ErrInvalid)
	case next.Key == 0:
		return "", fmt.Errorf("%w: SyncKey 0 cannot be stored", ErrInvalid)
	case base != nil && base.Key == next.Key:
		return "", fmt.Errorf("%w: next SyncKey equals base SyncKey %d", ErrInvalid, next.Key)
	}
	return id, nil
}

// CheckCachedRequest validates the arguments of PutCachedRequest and
// GetCachedRequest, for Store implementations, and returns the normalised
// device id as CheckIDs does.
func CheckCachedRequest(user, device, kind string) (string, error) {
	id, err := CheckIDs(user, device)
	if err != nil {
		return "", err
	}
	if kind == "" {
		return "", fmt.Errorf("%w: empty request kind", ErrInvalid)
	}
	return id, nil
}

// CheckCounterKey validates the key of an authentication-failure counter,
// for Store implementations.
func CheckCounterKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty counter key", ErrInvalid)
	}
	return nil
}

// CheckCounterIncr validates the arguments of IncrAuthFailures, for Store
// implementations.
func CheckCounterIncr(key string, ttl time.Duration) error {
	if err := CheckCounterKey(key); err != nil {
		return err
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: ttl %v", ErrInvalid, ttl)
	}
	return nil
}

// ApplyUpdate is the common core of UpsertDevice and UpdateDevice, for Store
// implementations: it runs fn on a copy of cur, or on a new record (Revision
// 0) when cur is nil, and returns the record to write and whether there is
// anything to write. It refuses a changed User or ID, advances Revision and,
// on creation, fills zero FirstSeen and LastSeen with now. When fn changed
// nothing in an existing record it returns cur and false: the store then
// skips the write.
func ApplyUpdate(cur *Device, user, id string, now time.Time, fn func(*Device) error) (*Device, bool, error) {
	var d Device
	if cur != nil {
		d = *cur
	} else {
		d = Device{User: user, ID: id}
	}
	rev := d.Revision
	if err := fn(&d); err != nil {
		return nil, false, err
	}
	if d.User != user || d.ID != id {
		return nil, false, fmt.Errorf("%w: update changed device identity %q/%q to %q/%q", ErrInvalid, user, id, d.User, d.ID)
	}
	d.Revision = rev
	if cur != nil && d == *cur {
		return cur, false, nil
	}
	d.Revision = rev + 1
	if rev == 0 {
		if d.FirstSeen.IsZero() {
			d.FirstSeen = now
		}
		if d.LastSeen.IsZero() {
			d.LastSeen = now
		}
	}
	return &d, true, nil
}
