package mailsync

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/easgate/easgate/backend"
)

// state is one stored state of a collection (devices.SyncState.Data).
type state struct {
	// Snap is the phone's view of the folder; nil until the first Changes
	// after priming.
	Snap *backend.FolderState `json:"s,omitempty"`
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
	// DueAdded are messages found but not sent to the phone yet
	// (WindowSize, response time budget, or failed to build). The
	// snapshot tracks them (without their flags, which are recorded when
	// the Add is sent), so that the rounds of a paged initial sync cost
	// the store a check of the folder's change marks, or nothing, rather
	// than a rescan; a change or expunge of one of them is not reported
	// (its Add carries its flags then, or it is dropped).
	DueAdded backend.UIDSet `json:"da,omitempty"`
	// Scanned is when the store was last asked for changes (Unix
	// seconds): a scan is put off while the due items fill the window,
	// but not for longer than maxScanDefer.
	Scanned int64 `json:"t,omitempty"`
	// Failed are messages (among DueAdded) that could not be built; they
	// are tried again after the others, without making MoreAvailable.
	Failed backend.UIDSet `json:"x,omitempty"`
	// Retries counts how often the phone repeated Parent.
	Retries int `json:"r,omitempty"`
	// Window is the WindowSize this state's batch was cut to.
	Window int `json:"w,omitempty"`
	// Own are messages the phone itself added (drafts, or moved here
	// before the first scan) that the next scan finds as new: they are
	// tracked but not sent back.
	Own backend.UIDSet `json:"o,omitempty"`
	// Drafts are the most recent drafts the phone added, by ClientId.
	Drafts []draftID `json:"dr,omitempty"`
}

// maxScanDefer is how long the rounds of a paged sync may go on sending
// what is due without asking the store for changes.
const maxScanDefer = 30 * time.Second

// scanWaits reports whether asking the store for changes can wait for a
// later round because items found by an earlier scan are still due: this
// round sends them (up to its window) and what a scan would find now comes
// after them anyway, except new mail and deletes, which then come a round
// or two later — or, when the due items end in this round, with the
// phone's next Sync, which its Ping asks for at once (Ping's check always
// scans). Nothing is lost: the snapshot still holds the folder as it was,
// so the next scan finds what changed meanwhile. A paged initial sync
// thus scans once, in its first round, not in its last as well (a scan
// that finds changes selects the folder: 2–5 ms of Dovecot's time for a
// 2,000-message Maildir). The scan is not put off when the FilterType
// changed (the window moved), for longer than maxScanDefer, before the
// first scan, or when only items that failed to build are due. The clock
// is read only when the rest says yes.
func (st *state) scanWaits(filter int, now func() time.Time) bool {
	if st.Snap == nil || filter != st.Filter {
		return false
	}
	due := st.DueDeleted.Len() + st.DueSoft.Len() + st.DueChanged.Len() + st.DueAdded.Diff(st.Failed).Len()
	return due > 0 && now().Sub(time.Unix(st.Scanned, 0)) <= maxScanDefer
}

// fresh reports whether st is a prime as SyncKey 0 left it: no snapshot
// of the folder taken, no request answered before it, not amended.
func (st *state) fresh() bool {
	return st.Snap == nil && st.Parent == 0 && !st.Amend
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

func encodeState(st *state) ([]byte, error) { return json.Marshal(st) }

// FilterType returns the FilterType (MS-ASCMD 2.2.3.68) a collection's
// stored state was synced with: data is a devices.SyncState.Data this
// package wrote. Ping checks a folder for changes with the same filter the
// device's last Sync used, without decoding the whole snapshot.
func FilterType(data []byte) (int, error) {
	var st struct {
		Filter int `json:"ft"` // state.Filter
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return 0, fmt.Errorf("mailsync: corrupt sync state: %w", err)
	}
	return st.Filter, nil
}

func decodeState(data []byte) (*state, error) {
	var st state
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("mailsync: corrupt sync state: %w", err)
	}
	return &st, nil
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
	st.DueAdded.RemoveUID(uid)
	st.Failed.RemoveUID(uid)
}

// Report is what an operator can see of a collection's stored state (the
// admin API's sync report): how much the phone has and what is owed to
// it, and the messages that could not be built.
type Report struct {
	// FilterType the state was synced with.
	FilterType int `json:"filterType"`
	// Tracked is how many messages the phone has been sent (0 before the
	// first Sync after priming).
	Tracked int `json:"tracked"`
	// DueAdds, DueChanges, DueDeletes and DueSoftDeletes are changes
	// found but not sent yet (window, time budget); DueAdds counts the
	// failed ones too.
	DueAdds        int `json:"dueAdds"`
	DueChanges     int `json:"dueChanges"`
	DueDeletes     int `json:"dueDeletes"`
	DueSoftDeletes int `json:"dueSoftDeletes"`
	// Failed are the UIDs of messages that could not be converted; they
	// are retried after the others on every Sync.
	Failed []uint32 `json:"failed"`
	// Retries is how often the phone repeated its last key.
	Retries int `json:"retries"`
}

// ReportState describes a stored state: data is a devices.SyncState.Data
// this package wrote.
func ReportState(data []byte) (Report, error) {
	st, err := decodeState(data)
	if err != nil {
		return Report{}, err
	}
	r := Report{
		FilterType:     st.Filter,
		DueAdds:        st.DueAdded.Len(),
		DueChanges:     st.DueChanged.Len(),
		DueDeletes:     st.DueDeleted.Len(),
		DueSoftDeletes: st.DueSoft.Len(),
		Failed:         []uint32{},
		Retries:        st.Retries,
	}
	if st.Snap != nil {
		r.Tracked = st.Snap.UIDs.Diff(st.DueAdded).Len()
	}
	for uid := range st.Failed.All() {
		r.Failed = append(r.Failed, uint32(uid))
	}
	return r, nil
}
