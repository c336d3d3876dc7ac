package policy

import (
	"crypto/rand"
	"encoding/binary"
)

// NewPolicyKey returns a random, non-zero policy key from crypto/rand.
// MS-ASPROV 2.2.2.42 makes the key an opaque 32-bit number; 0 means "no
// key" on the wire (AOSP sends X-MS-PolicyKey: 0 before provisioning) and
// iOS 4 refuses a Provision reply carrying 0, so 0 is never issued. The key
// is random rather than counted so that it cannot be guessed by a client
// that wants to skip Provision.
func NewPolicyKey() uint32 {
	var b [4]byte
	for {
		// crypto/rand.Read never returns an error (Go 1.24+): it crashes
		// the program if the system's randomness source fails.
		rand.Read(b[:])
		if k := binary.LittleEndian.Uint32(b[:]); k != 0 {
			return k
		}
	}
}

// Keys is the provisioning state stored per device. The gateway persists it
// as it comes back from Config.Provision and passes it into Config.Gate.
type Keys struct {
	// Pending is the temporary key handed out in phase 1 and not yet
	// acknowledged, 0 when none.
	Pending uint32
	// PendingHash is the hash of the policy document sent with Pending.
	PendingHash string
	// Current is the final key from the last successful phase 2, 0 when
	// the device never completed provisioning.
	Current uint32
	// CurrentHash is the policy hash Current was issued for; when it
	// differs from the hash of the device's policy now, Current is stale.
	CurrentHash string
	// Acked is the temporary key Current was issued for, so that a client
	// that repeats its phase-2 acknowledgement (its first answer was lost)
	// gets the same final key instead of policy Status 5.
	Acked uint32
}
