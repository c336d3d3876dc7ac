package mailsync

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/easgate/easgate/backend"
)

// state is one stored state of a collection (devices.SyncState.Data).
type state struct {
	// Snap is the phone's view of the folder; nil until the first Changes
	// after priming.
	Snap *backend.FolderState `json:"-"`
	// SnapText is Snap as stored (see snapshot).
	SnapText *snapshot `json:"s,omitempty"`
	// Filter is the FilterType the snapshot was taken with.
	Filter int `json:"ft,omitempty"`
	// Parent is the key of the request this state answered (0 after
	// priming).
	Parent uint64 `json:"pk,omitempty"`
	// Amend marks a state that is the Parent's own state edited out of
	// band (MoveItems), not an answer: a Sync with Parent adopts it.
	Amend bool `json:"am,omitempty"`
	// Batch is what the response carrying this state's key contained.
	Batch batch `json:"b,omitzero"`
	// DueChanged, DueDeleted and DueSoft are changes found but not yet
	// sent (WindowSize, response time budget). The snapshot already
	// holds the new flags of DueChanged and no longer tracks the others.
	DueChanged backend.UIDSet `json:"dc,omitempty"`
	DueDeleted backend.UIDSet `json:"dd,omitempty"`
	DueSoft    backend.UIDSet `json:"ds,omitempty"`
	// Failed are messages that could not be built; they stay untracked
	// and are tried again after the others, without making MoreAvailable.
	Failed backend.UIDSet `json:"x,omitempty"`
	// Retries counts how often the phone repeated Parent.
	Retries int `json:"r,omitempty"`
	// Window is the WindowSize this state's batch was cut to.
	Window int `json:"w,omitempty"`
}

// batch is the content of one response, by UID, and the answers to the
// client's commands, so that a repeated key gets the same response.
type batch struct {
	Added   backend.UIDSet `json:"a,omitempty"`
	Changed backend.UIDSet `json:"c,omitempty"`
	Deleted backend.UIDSet `json:"d,omitempty"`
	Soft    backend.UIDSet `json:"sd,omitempty"`
	More    bool           `json:"m,omitempty"`
	Results []result       `json:"rs,omitempty"`
}

// result is the recorded answer to one client command.
type result struct {
	Kind     CommandKind `json:"k"`
	ID       string      `json:"i"` // ServerId, or ClientId for Add
	Status   int         `json:"st"`
	ServerID string      `json:"si,omitempty"` // Add: the new ServerId
}

func (b *batch) size() int {
	return b.Added.Len() + b.Changed.Len() + b.Deleted.Len() + b.Soft.Len()
}

func (b *batch) find(kind CommandKind, id string) (result, bool) {
	for _, r := range b.Results {
		if r.Kind == kind && r.ID == id {
			return r, true
		}
	}
	return result{}, false
}

func encodeState(st *state) ([]byte, error) {
	c := *st
	c.SnapText = toSnapshot(st.Snap)
	return json.Marshal(&c)
}

func decodeState(data []byte) (*state, error) {
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("mailsync: corrupt sync state: %w", err)
	}
	st.Snap = st.SnapText.folderState()
	st.SnapText = nil
	return &st, nil
}

// snapshot is backend.FolderState in the same JSON form, with UID sets
// that decode in one pass (fastSet): a 2,000-message folder's fragmented
// \Seen set decodes in microseconds instead of milliseconds.
type snapshot struct {
	UIDValidity   uint32             `json:"v"`
	UIDNext       backend.UID        `json:"n"`
	Messages      uint32             `json:"m"`
	HighestModSeq uint64             `json:"ms,omitempty"`
	Window        time.Time          `json:"w,omitzero"`
	UIDs          fastSet            `json:"u"`
	Flags         map[string]fastSet `json:"f,omitempty"`
	Pending       fastSet            `json:"p,omitempty"`
}

func toSnapshot(fs *backend.FolderState) *snapshot {
	if fs == nil {
		return nil
	}
	s := &snapshot{UIDValidity: fs.UIDValidity, UIDNext: fs.UIDNext, Messages: fs.Messages, HighestModSeq: fs.HighestModSeq,
		Window: fs.Window, UIDs: fastSet(fs.UIDs), Pending: fastSet(fs.Pending)}
	if len(fs.Flags) > 0 {
		s.Flags = make(map[string]fastSet, len(fs.Flags))
		for f, set := range fs.Flags {
			s.Flags[f] = fastSet(set)
		}
	}
	return s
}

func (s *snapshot) folderState() *backend.FolderState {
	if s == nil {
		return nil
	}
	fs := &backend.FolderState{UIDValidity: s.UIDValidity, UIDNext: s.UIDNext, Messages: s.Messages, HighestModSeq: s.HighestModSeq,
		Window: s.Window, UIDs: backend.UIDSet(s.UIDs), Pending: backend.UIDSet(s.Pending)}
	if len(s.Flags) > 0 {
		fs.Flags = make(map[string]backend.UIDSet, len(s.Flags))
		for f, set := range s.Flags {
			fs.Flags[f] = backend.UIDSet(set)
		}
	}
	return fs
}

// fastSet is a backend.UIDSet with the same text form ("1:5,7") whose
// decoding appends ranges in one pass when they come sorted and apart, as
// UIDSet.String writes them, and falls back to backend.ParseUIDSet
// otherwise.
type fastSet backend.UIDSet

// MarshalText writes the set as backend.UIDSet does.
func (f fastSet) MarshalText() ([]byte, error) { return backend.UIDSet(f).MarshalText() }

// UnmarshalText reads the set.
func (f *fastSet) UnmarshalText(text []byte) error {
	var out backend.UIDSet
	rest := string(text)
	for rest != "" {
		var part string
		part, rest, _ = strings.Cut(rest, ",")
		lo, hi, isRange := strings.Cut(part, ":")
		a, err1 := strconv.ParseUint(lo, 10, 32)
		b, err2 := a, error(nil)
		if isRange {
			b, err2 = strconv.ParseUint(hi, 10, 32)
		}
		if err1 != nil || err2 != nil || a == 0 || a > b || (len(out) > 0 && backend.UID(a) <= out[len(out)-1].Stop+1) {
			set, err := backend.ParseUIDSet(string(text))
			if err != nil {
				return err
			}
			*f = fastSet(set)
			return nil
		}
		out = append(out, backend.UIDRange{Start: backend.UID(a), Stop: backend.UID(b)})
	}
	*f = fastSet(out)
	return nil
}

// clone returns a deep copy of st.
func (st *state) clone() *state {
	c := *st
	if st.Snap != nil {
		c.Snap = st.Snap.Clone()
	}
	c.DueChanged = st.DueChanged.Clone()
	c.DueDeleted = st.DueDeleted.Clone()
	c.DueSoft = st.DueSoft.Clone()
	c.Failed = st.Failed.Clone()
	c.Batch.Results = append([]result(nil), st.Batch.Results...)
	return &c
}

// forget removes every trace of uid: the phone no longer has the message
// and must not be told about it (it moved or deleted it itself).
func (st *state) forget(uid backend.UID) {
	if st.Snap != nil {
		st.Snap.Remove(uid)
		st.Snap.Pending.RemoveUID(uid)
	}
	st.DueChanged.RemoveUID(uid)
	st.DueDeleted.RemoveUID(uid)
	st.DueSoft.RemoveUID(uid)
	st.Failed.RemoveUID(uid)
}
