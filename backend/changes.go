package backend

import (
	"slices"
	"time"
)

// Scan says how much work Session.Changes had to do.
type Scan int

// The kinds of scan.
const (
	// ScanSkipped: the folder's change marks (UIDVALIDITY, UIDNEXT,
	// MESSAGES, HIGHESTMODSEQ) and the window's day were as in the
	// snapshot, so nothing was fetched. Needs CONDSTORE: without it a
	// flag change leaves no mark.
	ScanSkipped Scan = iota
	// ScanModSeq: only messages changed since the snapshot's mod-sequence
	// were fetched (CONDSTORE CHANGEDSINCE), plus the UID list.
	ScanModSeq
	// ScanFull: every message's flags were fetched and compared.
	ScanFull
)

// String returns the scan's name.
func (s Scan) String() string {
	switch s {
	case ScanSkipped:
		return "skipped"
	case ScanModSeq:
		return "modseq"
	case ScanFull:
		return "full"
	}
	return "unknown"
}

// ChangeSet is what Session.Changes found.
type ChangeSet struct {
	// Added are messages in the window that the snapshot did not track
	// (Sync Commands > Add). Their summaries come from Session.Summaries
	// or Session.Contents. State tracks them without flags (FlagsOf gives
	// none): the caller reads their flags anyway when it reads them to
	// send them, and records them then with State.SetFlags; a scan
	// without CONDSTORE reports a tracked message whose recorded flags
	// differ from the server's as Changed.
	Added UIDSet
	// Changed are tracked messages whose flags differ from the snapshot
	// (Sync Commands > Change), in UID order.
	Changed []FlagChange
	// Expunged are tracked messages that are gone (Sync Commands > Delete).
	Expunged UIDSet
	// AgedOut are tracked messages that still exist but now fall before
	// the window (Sync Commands > SoftDelete).
	AgedOut UIDSet
	// State is the new snapshot: pass it as since next time.
	State *FolderState
	// Scan says how the changes were found.
	Scan Scan
}

// Empty reports whether nothing changed.
func (c *ChangeSet) Empty() bool {
	return c.Added.Len() == 0 && len(c.Changed) == 0 && c.Expunged.Len() == 0 && c.AgedOut.Len() == 0
}

// FlagChange is a message whose flags changed, with all its flags now.
type FlagChange struct {
	UID   UID
	Flags []string
}

// FolderState is a snapshot of a folder taken by Session.Changes: which
// messages were in the window and their flags, and the folder's change
// marks. It is a plain value the gateway persists per device and
// collection (it encodes to compact JSON: UID sets as "1:5,7"). The
// gateway may edit it to record its own changes so they are not echoed
// back (SetFlags, Remove, Untrack).
type FolderState struct {
	// UIDValidity of the folder when the snapshot was taken.
	UIDValidity uint32 `json:"v"`
	// UIDNext of the folder when the snapshot was taken.
	UIDNext UID `json:"n"`
	// Messages is the folder's message count when the snapshot was taken.
	Messages uint32 `json:"m"`
	// HighestModSeq of the folder, 0 without CONDSTORE.
	HighestModSeq uint64 `json:"ms,omitempty"`
	// Window is the day (UTC midnight) the window started on, zero for
	// no window.
	Window time.Time `json:"w,omitzero"`
	// UIDs are the tracked messages: those in the window.
	UIDs UIDSet `json:"u"`
	// Flags maps each flag or keyword to the tracked messages that have
	// it. \Recent is not tracked.
	Flags map[string]UIDSet `json:"f,omitempty"`
	// Pending are UIDs the gateway untracked (Untrack) so that they are
	// reported as Added again; while there are any, Changes scans the
	// folder even if its change marks say nothing happened.
	Pending UIDSet `json:"p,omitempty"`
}

// FlagsOf returns the flags the snapshot records for uid, sorted.
func (s *FolderState) FlagsOf(uid UID) []string {
	var flags []string
	for f, set := range s.Flags {
		if set.Contains(uid) {
			flags = append(flags, f)
		}
	}
	sortFlags(flags)
	return flags
}

// SetFlags records that uid is tracked and has exactly flags. Sets
// that already agree are not touched, so recording flags the snapshot
// already holds allocates nothing.
func (s *FolderState) SetFlags(uid UID, flags []string) {
	s.UIDs.AddUID(uid)
	for f, set := range s.Flags {
		if !set.Contains(uid) || slices.ContainsFunc(flags, func(g string) bool { return CanonicalFlag(g) == f }) {
			continue
		}
		set.RemoveUID(uid)
		if len(set) == 0 {
			delete(s.Flags, f)
		} else {
			s.Flags[f] = set
		}
	}
	for _, f := range flags {
		f = CanonicalFlag(f)
		if f == FlagRecent {
			continue
		}
		set := s.Flags[f]
		if set.Contains(uid) {
			continue
		}
		if s.Flags == nil {
			s.Flags = make(map[string]UIDSet)
		}
		set.AddUID(uid)
		s.Flags[f] = set
	}
}

// Remove stops tracking uid (after the gateway moved or deleted it).
func (s *FolderState) Remove(uid UID) {
	s.UIDs.RemoveUID(uid)
	for f, set := range s.Flags {
		set.RemoveUID(uid)
		if set.Len() == 0 {
			delete(s.Flags, f)
		} else {
			s.Flags[f] = set
		}
	}
}

// Untrack stops tracking every UID in uids, so that the next Changes
// reports those still in the window as Added again. The gateway uses it
// for Adds it could not send yet (WindowSize).
func (s *FolderState) Untrack(uids UIDSet) {
	s.Pending = s.Pending.Union(s.UIDs.Intersect(uids))
	s.UIDs = s.UIDs.Diff(uids)
	for f, set := range s.Flags {
		set = set.Diff(uids)
		if set.Len() == 0 {
			delete(s.Flags, f)
		} else {
			s.Flags[f] = set
		}
	}
}

// Clone returns a deep copy of s.
func (s *FolderState) Clone() *FolderState {
	c := *s
	c.UIDs = s.UIDs.Clone()
	c.Pending = s.Pending.Clone()
	if s.Flags != nil {
		c.Flags = make(map[string]UIDSet, len(s.Flags))
		for f, set := range s.Flags {
			c.Flags[f] = set.Clone()
		}
	}
	return &c
}
