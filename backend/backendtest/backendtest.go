// Package backendtest is the conformance suite every backend.Store
// implementation runs. It exists so that the gateway can rely on one
// contract whatever the mail server: the same tests run against Dovecot
// (with CONDSTORE) and against go-imap's memory server (without), which
// proves both change-detection paths.
//
// The suite checks each Session call against what the server really holds,
// through an Outside view that the implementation's test supplies (a raw
// IMAP client for imapstore). Outside is also how the suite makes changes
// "elsewhere", as webmail or another phone would.
package backendtest

import (
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
)

// Harness is what Run needs from an implementation's test.
type Harness struct {
	// New returns a Store connected to the server under test. The suite
	// closes it (if it has a Close() error method) at the end of the test.
	New func(t *testing.T) backend.Store
	// Unreachable returns a Store whose server cannot be reached.
	Unreachable func(t *testing.T) backend.Store
	// User and Password are an account on the server. The suite only
	// creates folders named after its subtests, so the account may be
	// shared with other tests.
	User, Password string
	// Outside returns a second, independent view of User's mailbox.
	Outside func(t *testing.T) Outside
	// CondStore says the server has CONDSTORE: Changes on an unchanged
	// folder must then be ScanSkipped and flag changes ScanModSeq.
	CondStore bool
}

// Outside reads and changes the mailbox without going through the Store
// under test. Folder names are full server names ("A/B"); the methods fail
// the test on error.
type Outside interface {
	// CreateFolder creates a folder.
	CreateFolder(name string)
	// DeleteFolder deletes a folder.
	DeleteFolder(name string)
	// Folders returns the names of all folders.
	Folders() []string
	// UIDValidity returns a folder's UIDVALIDITY.
	UIDValidity(name string) uint32
	// Append stores a message and returns its UID.
	Append(folder string, msg []byte, flags []string, date time.Time) backend.UID
	// SetFlags replaces a message's flags.
	SetFlags(folder string, uid backend.UID, flags []string)
	// Expunge removes one message.
	Expunge(folder string, uid backend.UID)
	// Messages returns every message in the folder and its flags
	// (normalised with backend.NormalizeFlags).
	Messages(folder string) map[backend.UID][]string
	// Body returns a message's full text.
	Body(folder string, uid backend.UID) []byte
}
