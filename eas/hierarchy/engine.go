package hierarchy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
)

// Status values of FolderSync, FolderCreate, FolderUpdate and FolderDelete
// (MS-ASCMD 2.2.3.177.3–6).
const (
	StatusOK             = 1
	StatusExists         = 2  // FolderCreate/FolderUpdate: a folder of that name exists
	StatusSpecial        = 3  // the folder is a special (system) folder
	StatusNotFound       = 4  // FolderUpdate/FolderDelete: no such ServerId
	StatusParentNotFound = 5  // the ParentId names no folder
	StatusServerError    = 6  // the server failed
	StatusInvalidKey     = 9  // SyncKey unknown or invalid: the client starts from 0
	StatusMalformed      = 10 // the request is malformed
)

// Result is the outcome of one hierarchy command.
type Result struct {
	// Status is the command's status; the other fields are meaningful
	// only for StatusOK.
	Status int
	// SyncKey is the hierarchy's new SyncKey.
	SyncKey uint64
	// Changes are FolderSync's changes (never nil for FolderSync).
	Changes *Changes
	// ServerID is the folder FolderCreate made.
	ServerID string
	// Replayed is set when the answer repeats the one stored for a
	// repeated request.
	Replayed bool
	// Cause says, for the log, why Status is not StatusOK.
	Cause error
}

func fail(status int, format string, args ...any) Result {
	return Result{Status: status, Cause: fmt.Errorf(format, args...)}
}

// Engine runs the hierarchy commands for one gateway. Its methods return an
// error only for what the command cannot answer with a status of its own:
// errors wrapping backend.ErrUnavailable, backend.ErrAuthFailed or the
// context's error, which the caller turns into 503, 401 or nothing.
type Engine struct {
	// Store keeps the hierarchy states. Required.
	Store devices.Store
	// Options say how folders are presented.
	Options Options
	// FirstKey returns the first SyncKey of a new hierarchy chain; nil
	// means a random number below 2^31, so that keys of a later
	// partnership do not repeat those of an earlier one.
	FirstKey func() uint64
}

func (e *Engine) firstKey() uint64 {
	if e.FirstKey != nil {
		if k := e.FirstKey(); k != 0 {
			return k
		}
	}
	var b [4]byte
	rand.Read(b[:]) // never fails (Go 1.24+)
	return uint64(binary.BigEndian.Uint32(b[:])>>1) + 1
}

// loaded is the stored state a request works from.
type loaded struct {
	base     *devices.SyncState // the state of the request's key; nil for key 0 with no hierarchy
	known    *state             // base's content; for key 0, the latest state's (its ServerIds are kept)
	latest   *devices.SyncState // the current state, nil if none
	latestSt *state
	reset    bool // SyncKey 0: the device knows no folders
}

// errBadKey marks a SyncKey the store does not know.
var errBadKey = errors.New("hierarchy: unknown SyncKey")

// load reads the states a request with key needs.
func (e *Engine) load(ctx context.Context, user, device string, key uint64) (*loaded, error) {
	l := &loaded{}
	latest, err := e.Store.LatestSyncState(ctx, user, device, devices.HierarchyCollection)
	switch {
	case errors.Is(err, devices.ErrNotFound):
	case err != nil:
		return nil, err
	default:
		l.latest = latest
		if l.latestSt, err = decodeState(latest.Data); err != nil {
			return nil, err
		}
	}
	if key == 0 {
		l.reset = true
		l.base, l.known = l.latest, l.latestSt
		if l.known == nil {
			l.known = &state{NextID: 1}
		}
		return l, nil
	}
	if l.latest != nil && l.latest.Key == key {
		l.base, l.known = l.latest, l.latestSt
		return l, nil
	}
	base, err := e.Store.GetSyncState(ctx, user, device, devices.HierarchyCollection, key)
	if errors.Is(err, devices.ErrNotFound) {
		return nil, fmt.Errorf("%w %d", errBadKey, key)
	}
	if err != nil {
		return nil, err
	}
	l.base = base
	if l.known, err = decodeState(base.Data); err != nil {
		return nil, err
	}
	return l, nil
}

// replay returns the stored answer when the request (key, fingerprint) is
// the one that made the current state: the device did not get that answer
// and asks again.
func (l *loaded) replay(key uint64, request string) (*answer, uint64, bool) {
	if key == 0 || l.latest == nil || l.latest.Key == key || l.latestSt.BaseKey != key {
		return nil, 0, false
	}
	a := l.latestSt.Answer
	if a == nil || a.Request != request {
		return nil, 0, false
	}
	return a, l.latest.Key, true
}

// nextKey is the key of the state written on top of l.
func (e *Engine) nextKey(l *loaded) uint64 {
	if l.latest == nil {
		return e.firstKey()
	}
	return l.latest.Key + 1
}

// nextFree is the next free ServerId number: the larger of the base's and
// the current state's, so a number handed out in an answer the device never
// saw is not given to another folder either.
func (l *loaded) nextFree() uint64 {
	n := l.known.NextID
	if l.latestSt != nil && l.latestSt.NextID > n {
		n = l.latestSt.NextID
	}
	return max(n, 1)
}

// put stores next on top of l.base under key.
func (e *Engine) put(ctx context.Context, user, device string, l *loaded, key uint64, next *state) error {
	data, err := next.encode()
	if err != nil {
		return err
	}
	return e.Store.PutSyncState(ctx, user, device, devices.HierarchyCollection, l.base, &devices.SyncState{Key: key, Data: data})
}

// passOn reports whether err is one the caller answers itself (503, 401,
// a client gone away) rather than with a command status.
func passOn(err error) bool {
	return errors.Is(err, backend.ErrUnavailable) || errors.Is(err, backend.ErrAuthFailed) ||
		errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// failure turns err into a Result or a passed-on error.
func failure(what string, err error) (Result, error) {
	if passOn(err) {
		return Result{}, fmt.Errorf("%s: %w", what, err)
	}
	if errors.Is(err, errBadKey) {
		return Result{Status: StatusInvalidKey, Cause: err}, nil
	}
	return Result{Status: StatusServerError, Cause: fmt.Errorf("%s: %w", what, err)}, nil
}

// attempts is how often a state write is tried when another request wrote
// the hierarchy in between (devices.ErrConflict).
const attempts = 2

// FolderSync answers FolderSync with key (MS-ASCMD 2.2.1.5): the changes
// between what the device was told with key and the mail store's folders
// now. Key 0 answers every folder as an Add, keeping the ServerIds the
// device had, and deletes only the Sync states of folders that are gone.
// When nothing changed the key stays and nothing is written.
func (e *Engine) FolderSync(ctx context.Context, sess backend.Session, user, device string, key uint64) (Result, error) {
	req := fingerprint("FolderSync")
	return e.writeState(ctx, user, device, func(int) (*write, Result, error) {
		l, err := e.load(ctx, user, device, key)
		if err != nil {
			return reply(failure("loading the hierarchy", err))
		}
		if a, k, ok := l.replay(key, req); ok {
			return reply(Result{Status: StatusOK, SyncKey: k, Changes: a.changes(l.latestSt.Folders), Replayed: true}, nil)
		}
		live, err := sess.Folders(ctx)
		if err != nil {
			return reply(failure("listing folders", err))
		}
		known := l.known.Folders
		matches := match(known, live, nil)
		folders, nextID := present(known, live, matches, l.nextFree(), e.Options)
		var changes *Changes
		if l.reset {
			changes = &Changes{Add: folders}
		} else {
			changes = diff(known, folders)
		}
		gone := vanished(known, folders)
		if !l.reset && changes.Count() == 0 && sameFolders(known, folders) && nextID == l.known.NextID {
			return reply(Result{Status: StatusOK, SyncKey: key, Changes: changes}, nil)
		}
		next := &state{NextID: nextID, Folders: folders, BaseKey: key, Answer: &answer{Request: req}}
		next.Answer.record(changes)
		return &write{on: l, next: next, gone: gone, result: Result{Status: StatusOK, Changes: changes}}, Result{}, nil
	})
}

// vanished returns the ServerIds of known that next no longer has.
func vanished(known, next []Folder) []string {
	have := make(map[string]bool, len(next))
	for _, f := range next {
		have[f.ServerID] = true
	}
	var out []string
	for _, f := range known {
		if !have[f.ServerID] {
			out = append(out, f.ServerID)
		}
	}
	return out
}

// sameFolders reports whether two lists hold the same folders, field for
// field, in any order.
func sameFolders(a, b []Folder) bool {
	if len(a) != len(b) {
		return false
	}
	bySID := make(map[string]Folder, len(a))
	for _, f := range a {
		bySID[f.ServerID] = f
	}
	for _, f := range b {
		if g, ok := bySID[f.ServerID]; !ok || g != f {
			return false
		}
	}
	return true
}

// dropStates deletes the Sync states of folders that are gone.
func (e *Engine) dropStates(ctx context.Context, user, device string, sids []string) error {
	if len(sids) == 0 {
		return nil
	}
	return e.Store.DeleteSyncStates(ctx, user, device, sids...)
}

// fingerprint identifies a request for replay.
func fingerprint(parts ...string) string { return strings.Join(parts, "\x00") }

// indexOf returns the index of the folder with the ServerId, or -1.
func indexOf(folders []Folder, sid string) int {
	for i, f := range folders {
		if f.ServerID == sid {
			return i
		}
	}
	return -1
}

// parentFolder resolves a request's ParentId: RootID (or empty) is the
// top, anything else must be a known folder.
func parentFolder(folders []Folder, parentID string) (backend.FolderID, bool) {
	if parentID == RootID || parentID == "" {
		return "", true
	}
	i := indexOf(folders, parentID)
	if i < 0 {
		return "", false
	}
	return folders[i].ID, true
}

// opFailure answers a folder operation the mail store refused: the error
// passed on (see passOn) or the status opStatus gives.
func opFailure(doing, folder string, err error) (Result, error) {
	if passOn(err) {
		return Result{}, fmt.Errorf("%s: %w", doing, err)
	}
	return Result{Status: opStatus(err), Cause: fmt.Errorf("%s %q: %w", doing, folder, err)}, nil
}

// opStatus maps a backend error of a folder operation to its status.
func opStatus(err error) int {
	switch {
	case errors.Is(err, backend.ErrFolderExists):
		return StatusExists
	case errors.Is(err, backend.ErrSpecialFolder):
		return StatusSpecial
	case errors.Is(err, backend.ErrFolderNotFound):
		return StatusNotFound
	case errors.Is(err, backend.ErrParentNotFound):
		return StatusParentNotFound
	case errors.Is(err, backend.ErrInvalidName):
		return StatusMalformed
	}
	return StatusServerError
}

// write is what one attempt of a hierarchy command stores: next on top of
// the state it was built from, then the Sync states of the folders in gone
// are dropped and result is the answer, with the new SyncKey.
type write struct {
	on     *loaded
	next   *state
	gone   []string
	result Result
}

// reply ends a write attempt without writing: r and err are the answer.
func reply(r Result, err error) (*write, Result, error) { return nil, r, err }

// writeState runs try and stores the state it builds, as a compare-and-set
// on the state try loaded; when another request wrote the hierarchy in
// between (devices.ErrConflict) it runs try again, up to attempts times.
// try gets the attempt's number (0 first) and returns either a write or,
// through reply, the command's answer without one. This is the one retry
// loop of FolderSync and the folder operations.
func (e *Engine) writeState(ctx context.Context, user, device string, try func(attempt int) (*write, Result, error)) (Result, error) {
	var lastErr error
	for attempt := range attempts {
		w, r, err := try(attempt)
		if w == nil {
			return r, err
		}
		newKey := e.nextKey(w.on)
		err = e.put(ctx, user, device, w.on, newKey, w.next)
		if errors.Is(err, devices.ErrConflict) {
			lastErr = err
			continue
		}
		if err != nil {
			return failure("storing the hierarchy", err)
		}
		if err := e.dropStates(ctx, user, device, w.gone); err != nil {
			return failure("deleting the Sync states of deleted folders", err)
		}
		w.result.SyncKey = newKey
		return w.result, nil
	}
	return Result{Status: StatusServerError, Cause: fmt.Errorf("storing the hierarchy: %w", lastErr)}, nil
}

// commit writes the state an operation produced, reloading and
// re-applying it once if another request wrote the hierarchy in between.
// apply gets the loaded state and returns the new folder list, the next
// free number and the ServerId to answer (FolderCreate); it must not touch
// the mail store.
func (e *Engine) commit(ctx context.Context, user, device string, key uint64, req string, l *loaded,
	apply func(l *loaded) ([]Folder, uint64, string), gone []string) (Result, error) {
	return e.writeState(ctx, user, device, func(attempt int) (*write, Result, error) {
		if attempt > 0 {
			var err error
			if l, err = e.load(ctx, user, device, key); err != nil {
				return reply(failure("reloading the hierarchy", err))
			}
		}
		folders, nextID, sid := apply(l)
		next := &state{NextID: nextID, Folders: folders, BaseKey: key, Answer: &answer{Request: req, ServerID: sid}}
		return &write{on: l, next: next, gone: gone, result: Result{Status: StatusOK, ServerID: sid}}, Result{}, nil
	})
}

// begin loads the state of a folder operation and checks its key; a
// non-nil Result ends the operation there (a status or a replay).
func (e *Engine) begin(ctx context.Context, user, device string, key uint64, req string) (*loaded, *Result, error) {
	if key == 0 {
		r := fail(StatusInvalidKey, "hierarchy: SyncKey 0 in a folder operation")
		return nil, &r, nil
	}
	l, err := e.load(ctx, user, device, key)
	if err != nil {
		r, err := failure("loading the hierarchy", err)
		return nil, &r, err
	}
	if a, k, ok := l.replay(key, req); ok {
		return nil, &Result{Status: StatusOK, SyncKey: k, ServerID: a.ServerID, Replayed: true}, nil
	}
	return l, nil, nil
}

// Create runs FolderCreate (MS-ASCMD 2.2.1.3): a mail folder called name
// under the folder parentID (RootID for the top level). typ must be a
// user-created mail or generic folder type (12 or 1). A repeated request
// with the same key, parent and name whose answer was lost gets the same
// ServerId again.
func (e *Engine) Create(ctx context.Context, sess backend.Session, user, device string, key uint64, parentID, name string, typ int) (Result, error) {
	if name == "" {
		return fail(StatusMalformed, "hierarchy: FolderCreate without DisplayName"), nil
	}
	if typ != TypeUserMail && typ != TypeUserGeneric {
		return fail(StatusMalformed, "hierarchy: FolderCreate of type %d: only mail folders (12) exist here", typ), nil
	}
	if parentID == "" {
		parentID = RootID
	}
	req := fingerprint("FolderCreate", parentID, name)
	l, r, err := e.begin(ctx, user, device, key, req)
	if r != nil || err != nil {
		return *r, err
	}
	parent, ok := parentFolder(l.known.Folders, parentID)
	if !ok {
		return fail(StatusParentNotFound, "hierarchy: FolderCreate under unknown ParentId %q", parentID), nil
	}
	f, err := sess.CreateFolder(ctx, parent, name)
	if err != nil {
		return opFailure("creating folder", name, err)
	}
	return e.commit(ctx, user, device, key, req, l, func(l *loaded) ([]Folder, uint64, string) {
		folders := append([]Folder(nil), l.known.Folders...)
		n := l.nextFree()
		if i := slices.IndexFunc(folders, func(k Folder) bool { return k.ID == f.ID }); i >= 0 {
			// Another request listed the new folder first.
			return folders, n, folders[i].ServerID
		}
		sid := strconv.FormatUint(n, 10)
		folders = append(folders, Folder{
			ServerID: sid, ParentID: parentID, DisplayName: displayName(f), Type: TypeUserMail,
			ID: f.ID, Name: f.Name, UIDValidity: f.UIDValidity, NoSelect: f.NoSelect,
		})
		return folders, n + 1, sid
	}, nil)
}

// beginEdit is begin for FolderUpdate and FolderDelete: the folder sid
// must also be editable. It returns the folder's index in l.known.Folders.
func (e *Engine) beginEdit(ctx context.Context, user, device string, key uint64, req, sid string) (*loaded, int, *Result, error) {
	l, r, err := e.begin(ctx, user, device, key, req)
	if r != nil || err != nil {
		return nil, -1, r, err
	}
	i, r := editable(l.known.Folders, sid)
	return l, i, r, nil
}

// editable checks that the folder of a FolderUpdate or FolderDelete may be
// changed: a known ServerId of a user folder.
func editable(folders []Folder, sid string) (int, *Result) {
	i := indexOf(folders, sid)
	if i < 0 {
		r := fail(StatusNotFound, "hierarchy: unknown ServerId %q", sid)
		return -1, &r
	}
	if f := folders[i]; f.Type != TypeUserMail || f.Role != backend.RoleNone {
		r := fail(StatusSpecial, "hierarchy: %q (%s) is the %v folder", sid, f.Name, f.Role)
		return -1, &r
	}
	return i, nil
}

// descendants returns sid and the ServerIds of every folder below it.
func descendants(folders []Folder, sid string) map[string]bool {
	out := map[string]bool{sid: true}
	for grew := true; grew; {
		grew = false
		for _, f := range folders {
			if !out[f.ServerID] && out[f.ParentID] {
				out[f.ServerID], grew = true, true
			}
		}
	}
	return out
}

// Update runs FolderUpdate (MS-ASCMD 2.2.1.4): the folder sid is renamed
// to name and moved under parentID (RootID for the top level). The stored
// hierarchy then holds the new name and place, and the new backend IDs of
// the folder and its children, so the next FolderSync reports nothing.
func (e *Engine) Update(ctx context.Context, sess backend.Session, user, device string, key uint64, sid, parentID, name string) (Result, error) {
	if sid == "" || name == "" {
		return fail(StatusMalformed, "hierarchy: FolderUpdate without ServerId or DisplayName"), nil
	}
	if parentID == "" {
		parentID = RootID
	}
	req := fingerprint("FolderUpdate", sid, parentID, name)
	l, i, r, err := e.beginEdit(ctx, user, device, key, req, sid)
	if r != nil || err != nil {
		return *r, err
	}
	old := l.known.Folders[i]
	parent, ok := parentFolder(l.known.Folders, parentID)
	if !ok {
		return fail(StatusParentNotFound, "hierarchy: FolderUpdate to unknown ParentId %q", parentID), nil
	}
	if parentID != RootID && descendants(l.known.Folders, sid)[parentID] {
		return fail(StatusParentNotFound, "hierarchy: FolderUpdate would move %q below itself", sid), nil
	}
	f, err := sess.RenameFolder(ctx, old.ID, parent, name)
	if err != nil {
		return opFailure("renaming folder", old.Name, err)
	}
	// The children's names, and IDs that derive from names, changed too.
	live, lerr := sess.Folders(ctx)
	if lerr != nil && passOn(lerr) {
		return Result{}, fmt.Errorf("listing folders after a rename: %w", lerr)
	}
	hint := &rename{from: old.Name, to: f.Name, delim: f.Delimiter}
	return e.commit(ctx, user, device, key, req, l, func(l *loaded) ([]Folder, uint64, string) {
		folders := append([]Folder(nil), l.known.Folders...)
		if i := indexOf(folders, sid); i >= 0 {
			folders[i].ParentID, folders[i].DisplayName = parentID, displayName(f)
		}
		rebind(folders, live, hint)
		if i := indexOf(folders, sid); i >= 0 {
			folders[i].ID, folders[i].Name, folders[i].UIDValidity, folders[i].NoSelect = f.ID, f.Name, f.UIDValidity, f.NoSelect
		}
		return folders, l.nextFree(), ""
	}, nil)
}

// rebind points the folders at the mail-store folders they are after a
// rename: found by ID, else by their renamed name. The device's view
// (ParentId, DisplayName, Type) is left alone.
func rebind(folders []Folder, live []backend.Folder, hint *rename) {
	byID := make(map[backend.FolderID]backend.Folder, len(live))
	byName := make(map[string]backend.Folder, len(live))
	for _, f := range live {
		byID[f.ID] = f
		byName[f.Name] = f
	}
	for i, k := range folders {
		f, ok := byID[k.ID]
		if !ok {
			if to, renamed := hint.renamed(k.Name); renamed {
				f, ok = byName[to]
			}
		}
		if ok {
			folders[i].ID, folders[i].Name, folders[i].UIDValidity, folders[i].NoSelect = f.ID, f.Name, f.UIDValidity, f.NoSelect
		}
	}
}

// Delete runs FolderDelete (MS-ASCMD 2.2.1.2): the folder sid and every
// folder below it are deleted, with their Sync states.
func (e *Engine) Delete(ctx context.Context, sess backend.Session, user, device string, key uint64, sid string) (Result, error) {
	if sid == "" {
		return fail(StatusMalformed, "hierarchy: FolderDelete without ServerId"), nil
	}
	req := fingerprint("FolderDelete", sid)
	l, i, r, err := e.beginEdit(ctx, user, device, key, req, sid)
	if r != nil || err != nil {
		return *r, err
	}
	victim := l.known.Folders[i]
	sub := descendants(l.known.Folders, sid)
	for _, f := range l.known.Folders {
		if sub[f.ServerID] && (f.Type != TypeUserMail || f.Role != backend.RoleNone) {
			return fail(StatusSpecial, "hierarchy: %q holds the %v folder %s", sid, f.Role, f.Name), nil
		}
	}
	if err := sess.DeleteFolder(ctx, victim.ID); err != nil {
		return opFailure("deleting folder", victim.Name, err)
	}
	var gone []string
	for _, f := range l.known.Folders {
		if sub[f.ServerID] {
			gone = append(gone, f.ServerID)
		}
	}
	return e.commit(ctx, user, device, key, req, l, func(l *loaded) ([]Folder, uint64, string) {
		drop := descendants(l.known.Folders, sid)
		var folders []Folder
		for _, f := range l.known.Folders {
			if !drop[f.ServerID] {
				folders = append(folders, f)
			}
		}
		return folders, l.nextFree(), ""
	}, gone)
}

// Pending reports whether the mail store's folders differ from what the
// device was last told, that is whether a FolderSync with the current key
// would report changes. Ping answers Status 7 and Sync Status 12 then
// (MS-ASCMD 2.2.3.177.10, 2.2.3.177.17), so the device runs FolderSync. It
// returns an error wrapping devices.ErrNotFound when the device has no
// hierarchy yet.
func (e *Engine) Pending(ctx context.Context, sess backend.Session, user, device string) (bool, error) {
	latest, err := e.Store.LatestSyncState(ctx, user, device, devices.HierarchyCollection)
	if err != nil {
		return false, fmt.Errorf("hierarchy: loading: %w", err)
	}
	st, err := decodeState(latest.Data)
	if err != nil {
		return false, err
	}
	live, err := sess.Folders(ctx)
	if err != nil {
		return false, fmt.Errorf("hierarchy: listing folders: %w", err)
	}
	folders, _ := present(st.Folders, live, match(st.Folders, live, nil), st.NextID, e.Options)
	return diff(st.Folders, folders).Count() > 0, nil
}
