package mailsync

import (
	"context"
	"errors"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
)

// GetItemEstimate statuses (MS-ASCMD 2.2.3.177.6).
const (
	EstimateSuccess           = 1
	EstimateInvalidCollection = 2
	EstimateNotPrimed         = 3
	EstimateInvalidKey        = 4
)

// Estimate returns how many changes (adds, changes, deletes, soft
// deletes) the next Sync of the collection with req's key and FilterType
// would bring, counting every one, not just a window's worth, but not
// the items that failed to build (GetItemEstimate, MS-ASCMD 2.2.1.9).
// Nothing is stored. The status is
// EstimateNotPrimed for key 0 or a collection never synced,
// EstimateInvalidKey for an unknown key and EstimateInvalidCollection for
// a folder that is gone.
func (e *Engine) Estimate(ctx context.Context, req *Request) (int, int, error) {
	key, ok := ParseKey(req.SyncKey)
	if !ok {
		return 0, EstimateInvalidKey, nil
	}
	if key == 0 {
		return 0, EstimateNotPrimed, nil
	}
	_, cur, replay, err := e.load(ctx, req, key)
	if errors.Is(err, ErrInvalidKey) {
		if _, lerr := e.Store.LatestSyncState(ctx, req.User, req.Device, req.Collection); errors.Is(lerr, devices.ErrNotFound) {
			return 0, EstimateNotPrimed, nil
		}
		return 0, EstimateInvalidKey, nil
	}
	if err != nil {
		return 0, 0, err
	}
	n := 0
	var rebuilt backend.UIDSet // the repeated batch's Adds
	if replay {
		n = cur.Batch.size()
		rebuilt = cur.Batch.Added
	}
	_, err = e.collect(ctx, req, cur)
	switch {
	case errors.Is(err, backend.ErrFolderNotFound):
		return 0, EstimateInvalidCollection, nil
	case errors.Is(err, backend.ErrUIDValidityChanged):
		return 0, EstimateInvalidKey, nil
	case err != nil:
		return 0, 0, err
	}
	// The repeated batch's Adds are built again from the store as it is
	// now (see build): one that changed since carries its new flags, one
	// that is gone is not sent at all. Neither is a change of its own, so
	// counting the scan's findings for them would count them twice.
	// Items that failed to build are tried again, but are not counted:
	// they are mostly messages that do not convert (the store being down
	// fails the whole Sync instead), and Ping, which asks this, would
	// wake the phone for them on every check, for good.
	gone := rebuilt.Intersect(cur.DueDeleted)
	n -= gone.Len()
	n += cur.DueAdded.Diff(cur.Failed).Len() + cur.DueChanged.Diff(rebuilt).Len() + cur.DueDeleted.Diff(gone).Len() + cur.DueSoft.Len()
	return n, EstimateSuccess, nil
}

// Collection names one side of a move: the device's collection and the
// backend folder it maps to.
type Collection struct {
	ID     string
	Folder backend.FolderID
}

// Move moves the message src names from one collection to another
// (MoveItems, MS-ASCMD 2.2.1.12) and amends both collections' states so
// that neither Sync doubles nor loses it: the source forgets the message
// (no Delete is sent for what the phone moved itself), the destination
// tracks it under its new UID with the flags the phone knew (no Add is
// sent for what the phone already shows). It returns the new ServerId,
// "" when the server did not report the new UID (IMAP without UIDPLUS:
// the destination's next Sync adds it). Errors are the session's
// (ErrMessageNotFound, ErrFolderNotFound, ErrDestNotFound, ErrSameFolder)
// and the device store's.
func (e *Engine) Move(ctx context.Context, sess backend.Session, user, device string, from Collection, srcID string, to Collection) (string, error) {
	uid := ParseServerID(from.ID, srcID)
	if uid == 0 {
		return "", backend.ErrMessageNotFound
	}
	if from.Folder == to.Folder {
		return "", backend.ErrSameFolder
	}
	newUID, err := sess.Move(ctx, from.Folder, uid, to.Folder)
	if err != nil {
		return "", err
	}
	var flags []string
	known := false // the phone had the message, so it shows it in dst now
	stale := false // the phone may not have heard of flags yet
	if err := e.Amend(ctx, user, device, from.ID, func(st *state) {
		if st.Snap != nil && st.Snap.UIDs.Contains(uid) && !st.DueAdded.Contains(uid) {
			flags, known = st.Snap.FlagsOf(uid), true
			// The snapshot holds the new flags of a change still due,
			// or of one the last response carried, which the phone
			// may not have got: it may hold the key before (the
			// response lost), and MoveItems does not say which. A
			// Change of flags it has already is harmless; old flags
			// kept in dst for good are not.
			stale = st.DueChanged.Contains(uid) || st.Batch.Changed.Contains(uid)
		}
		st.forget(uid)
	}); err != nil {
		return "", err
	}
	if newUID == 0 {
		return "", nil
	}
	if err := e.Amend(ctx, user, device, to.ID, func(st *state) {
		switch {
		case !known:
		case st.Snap == nil:
			// dst was primed but never synced: its first scan finds
			// every message new. The phone's own, it is tracked, not
			// added (as a draft the phone added is), and sent as a
			// Change with its flags then, which may have moved since
			// the phone last heard of them.
			st.Own.AddUID(newUID)
			st.DueChanged.AddUID(newUID)
		default:
			st.Snap.SetFlags(newUID, flags)
			if stale {
				// Sent as a Change in dst, or the phone would keep
				// the old flags there for good.
				st.DueChanged.AddUID(newUID)
			}
		}
	}); err != nil {
		return "", err
	}
	return ServerID(to.ID, newUID), nil
}

// Amend edits the collection's current state out of band. When that
// state answers a key the store still keeps, the edited state is stored
// again under its own key, so that both keys the phone may hold stay
// valid (the response carrying the newer may be lost: the phone names a
// message it had before); otherwise it is stored under a fresh key as an
// amendment of the key the phone holds, which the phone's next Sync with
// that key adopts (see the package documentation). A collection without
// state is left alone.
func (e *Engine) Amend(ctx context.Context, user, device, collection string, fn func(*state)) error {
	var err error
	for range 3 {
		err = e.amend(ctx, user, device, collection, fn)
		if !errors.Is(err, devices.ErrConflict) {
			return err
		}
	}
	return err
}

func (e *Engine) amend(ctx context.Context, user, device, collection string, fn func(*state)) error {
	latest, err := e.Store.LatestSyncState(ctx, user, device, collection)
	if errors.Is(err, devices.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	st, err := decodeState(latest.Data)
	if err != nil {
		return err
	}
	if !st.Amend && st.Parent != 0 {
		// latest answers the key st.Parent, which the store keeps as
		// the previous state: the phone holds either key, as the
		// response carrying latest's may be lost (MoveItems carries no
		// SyncKey, and the phone names a message it had before). The
		// edit is stored under latest's own key again, st.Parent kept
		// as the previous state, so that both stay valid: latest's key
		// adopts it, st.Parent replays latest's batch with it. (An
		// amendment of latest would drop st.Parent: Status 3, a
		// resync of the whole folder.)
		prev, err := e.Store.GetSyncState(ctx, user, device, collection, st.Parent)
		switch {
		case err == nil && prev.Revision != latest.Revision:
			return devices.ErrConflict // written meanwhile
		case err == nil:
			fn(st)
			data, err := encodeState(st)
			if err != nil {
				return err
			}
			return e.Store.PutSyncState(ctx, user, device, collection, prev, &devices.SyncState{Key: latest.Key, Data: data})
		case !errors.Is(err, devices.ErrNotFound):
			return err
		}
	}
	base := latest
	parent := latest.Key
	if st.Amend {
		// Amend the amendment, written as a sibling under the
		// phone's key so that key stays valid.
		parent = st.Parent
		base, err = e.Store.GetSyncState(ctx, user, device, collection, parent)
		if errors.Is(err, devices.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
	}
	st.Amend = true
	st.Parent = parent
	fn(st)
	data, err := encodeState(st)
	if err != nil {
		return err
	}
	return e.Store.PutSyncState(ctx, user, device, collection, base, &devices.SyncState{Key: max(latest.Key, base.Key) + 1, Data: data})
}
