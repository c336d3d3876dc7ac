package mailsync

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/eas/mailitem"
	"github.com/easgate/easgate/wbxml"
)

// Sync collection statuses (MS-ASCMD 2.2.3.177.17).
const (
	StatusSuccess          = 1
	StatusInvalidSyncKey   = 3
	StatusProtocolError    = 4
	StatusServerError      = 5
	StatusConversionError  = 6
	StatusConflict         = 7
	StatusObjectNotFound   = 8
	StatusCannotComplete   = 9
	StatusHierarchyChanged = 12
	StatusIncomplete       = 13 // an empty or Partial request without a cached one
	StatusInvalidWait      = 14
	StatusTooMany          = 15
	StatusRetry            = 16
)

// DefaultMaxResponseBytes is Engine.MaxResponseBytes by default.
const DefaultMaxResponseBytes = 32 << 20

// DefaultParallel is how many items are built at once by default.
const DefaultParallel = 4

// Window sizes (MS-ASCMD 2.2.3.199): 1 to 512, larger values are 512.
const (
	DefaultWindowSize = 100
	MaxWindowSize     = 512
)

// CommandKind is the kind of a client command in Sync > Collection >
// Commands (MS-ASCMD 2.2.3.28).
type CommandKind uint8

// The client command kinds.
const (
	CmdChange CommandKind = iota + 1
	CmdDelete
	CmdFetch
	CmdAdd
)

// String returns the command's element name.
func (k CommandKind) String() string {
	switch k {
	case CmdChange:
		return "Change"
	case CmdDelete:
		return "Delete"
	case CmdFetch:
		return "Fetch"
	case CmdAdd:
		return "Add"
	}
	return "CommandKind(" + strconv.Itoa(int(k)) + ")"
}

// Command is one client command.
type Command struct {
	Kind CommandKind
	// ServerID names the message (Change, Delete, Fetch).
	ServerID string
	// ClientID names a new item (Add).
	ClientID string
	// Read is email:Read of a Change, nil when absent.
	Read *bool
	// Flag is email:Flag > Status of a Change: nil when there is no Flag
	// element, "" for an empty Flag (cleared), else "0", "1" or "2".
	Flag *string
	// Categories of a Change (14.0+), nil when absent: the message's
	// keywords that are not bookkeeping ones become exactly these.
	Categories []string
	// EditsContent marks a Change that edits a draft's content (To,
	// Subject, Body...): not supported, answered with Status 6 and
	// nothing changed.
	EditsContent bool
	// Draft is the ApplicationData of an Add (a 16.x draft), nil when
	// absent or not convertible (the Add gets Status 6).
	Draft *mailitem.Draft
	// DraftErr is why the Add's ApplicationData is not a Draft
	// (mailitem.ErrBadDraft), for the log.
	DraftErr error
}

// Options are the collection's sync options.
type Options struct {
	// FilterType 0 (all) to 5 (one month) (MS-ASCMD 2.2.3.68), or 6
	// and 7 (three and six months, see FilterSince).
	FilterType int
	// WindowSize is the most items to send; 0 means DefaultWindowSize.
	WindowSize int
	// GetChanges asks for the server's changes (default true after 0).
	GetChanges bool
	// DeletesAsMoves moves deleted messages to Trash (default true).
	DeletesAsMoves bool
	// ClientWins is Conflict 0 (MS-ASCMD 2.2.3.34): a client Change is
	// applied even to a message the server changed since the phone last
	// heard of it. False is Conflict 1, the default: such a Change is
	// refused with Status 7 and the server's version is sent instead.
	ClientWins bool
	// From is the user's address, the sender of drafts the phone adds;
	// empty means the user name.
	From string
	// Item are the options items are built with (body preferences,
	// MIMESupport, protocol version, Drafts). Its FileRef is replaced per
	// message by FileRef below.
	Item mailitem.Options
	// FileRef names an attachment of message uid for ItemOperations
	// (AirSyncBase FileReference, MS-ASAIRS 2.2.2.24); nil lists
	// attachments without one.
	FileRef func(uid backend.UID, partPath []int) string
}

// Request is one collection of a Sync request.
type Request struct {
	User, Device string
	// Collection is the folder's ServerId (the CollectionId).
	Collection string
	// Folder is the backend folder the collection names.
	Folder backend.FolderID
	// Session is the user's mail store.
	Session backend.Session
	// SyncKey is the key the phone sent, as text ("0" primes).
	SyncKey string
	Options Options
	// Commands are the client's commands, in request order.
	Commands []Command
	// Deadline, when not zero, is when building items must stop (the
	// client family's response budget); the rest stays due and
	// MoreAvailable is set.
	Deadline time.Time
	// OpenSession, when not nil, opens another session of the same user,
	// which a round that leaves adds due uses to read the next window
	// ahead (Engine.ReadAheadBytes) after Sync returned. The session is
	// closed when the read ends.
	OpenSession func(context.Context) (backend.Session, error)
}

// Item is one server command of the response.
type Item struct {
	ServerID string
	// Data is the ApplicationData (Add, Change); nil for deletes.
	Data *wbxml.Element
}

// Response is the answer to one client command (Sync > Responses).
type Response struct {
	Kind     CommandKind
	ServerID string
	ClientID string
	Status   int
	// Data is the ApplicationData of a Fetch.
	Data *wbxml.Element
}

// Result is the engine's answer for one collection.
type Result struct {
	// Status is the collection's Status.
	Status int
	// SyncKey is the key to send (the new one; the phone's own when
	// Unchanged).
	SyncKey string
	// Adds, Changes, Deletes and SoftDeletes are the server's commands.
	Adds, Changes []Item
	Deletes       []string
	SoftDeletes   []string
	// Responses answer the client's commands.
	Responses []Response
	// MoreAvailable says more changes are due.
	MoreAvailable bool
	// Unchanged means nothing to report and nothing was stored: the
	// phone keeps its key (the collection may be left out of the
	// response, MS-ASCMD 2.2.2.20).
	Unchanged bool
	// Replay says the phone repeated its previous key and got the same
	// batch again.
	Replay bool
	// Scan is how the store found the changes (for metrics).
	Scan backend.Scan
}

// Engine runs Sync, GetItemEstimate and MoveItems against a device store.
type Engine struct {
	// Store keeps the sync states.
	Store devices.Store
	// Logger gets warnings about items that could not be built; nil
	// means slog.Default().
	Logger *slog.Logger
	// Now is the clock the response budget is checked with; nil means
	// time.Now.
	Now func() time.Time
	// Parallel is how many items are built at once; 0 means
	// DefaultParallel (imapstore's default connections per user).
	Parallel int
	// MaxResponseBytes bounds the body bytes the Adds of one Sync
	// response carry, as foreseen when each message's summary is read,
	// before anything else of it (the message's size, or the body
	// preference's TruncationSize when smaller): a message that would go
	// past it stays due for the next round (MoreAvailable), except the
	// first, which is always built. It
	// keeps a window of large messages asked for whole (MIME, or no
	// TruncationSize) from being held in memory at once. 0 means
	// DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// ReadAheadBytes bounds the bytes of messages read ahead for the
	// next round of a paged sync (see readahead.go), across all devices:
	// a read ahead stops there. 0 means DefaultReadAheadBytes; negative
	// turns reading ahead off.
	ReadAheadBytes int64

	buildFailures atomic.Uint64
	ahead         readAheads
}

// BuildFailures returns how many items could not be built so far.
func (e *Engine) BuildFailures() uint64 { return e.buildFailures.Load() }

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

func (e *Engine) log() *slog.Logger {
	if e.Logger != nil {
		return e.Logger
	}
	return slog.Default()
}

// ServerID returns the ServerId of the message uid in collection:
// "<collection>:<uid>" (digest §3.4).
func ServerID(collection string, uid backend.UID) string {
	var buf [32]byte
	return string(strconv.AppendUint(append(append(buf[:0], collection...), ':'), uint64(uid), 10))
}

// ParseServerID returns the UID of a ServerId of collection, or 0.
func ParseServerID(collection, id string) backend.UID {
	rest, ok := strings.CutPrefix(id, collection+":")
	if !ok {
		return 0
	}
	n, err := strconv.ParseUint(rest, 10, 32)
	if err != nil {
		return 0
	}
	return backend.UID(n)
}

// FormatKey returns a SyncKey's text form.
func FormatKey(k uint64) string { return strconv.FormatUint(k, 10) }

// ParseKey parses a SyncKey; ok is false for a key this engine never
// issued (which is Status 3, like any unknown key).
func ParseKey(s string) (k uint64, ok bool) {
	k, err := strconv.ParseUint(s, 10, 64)
	return k, err == nil
}

// newChainKey returns a random first key, so that keys of a new
// partnership never equal those of an earlier one.
func newChainKey() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:])>>20 + 1 // leave room to count up
}

// FilterSince returns the start of the window for an email FilterType at
// now; zero for 0 (all) and unknown types. MS-ASCMD 2.2.3.68.2 gives mail
// 1 (one day) to 5 (one month); 6 (three months) and 7 (six months) are
// the calendar's, but some mail clients offer and send them (Firefox OS
// Mail did), and Z-Push honours them for mail: they are windows of 90 and
// 180 days, not "all".
func FilterSince(filter int, now time.Time) time.Time {
	days := map[int]int{1: 1, 2: 3, 3: 7, 4: 14, 5: 30, 6: 90, 7: 180}[filter]
	if days == 0 {
		return time.Time{}
	}
	return now.AddDate(0, 0, -days)
}

// ErrInvalidKey is wrapped by errors for a SyncKey the store does not hold.
var ErrInvalidKey = errors.New("mailsync: invalid sync key")

// load returns the state stored under the phone's key and the state to
// work from: the same, the current state when the key was repeated
// (replay), or an amendment of the key's state.
func (e *Engine) load(ctx context.Context, req *Request, key uint64) (base *devices.SyncState, cur *state, replay bool, err error) {
	base, err = e.Store.GetSyncState(ctx, req.User, req.Device, req.Collection, key)
	if errors.Is(err, devices.ErrNotFound) {
		return nil, nil, false, fmt.Errorf("%w: %d", ErrInvalidKey, key)
	}
	if err != nil {
		return nil, nil, false, err
	}
	cur, err = decodeState(base.Data)
	if err != nil {
		return nil, nil, false, err
	}
	latest, err := e.Store.LatestSyncState(ctx, req.User, req.Device, req.Collection)
	if err != nil {
		return nil, nil, false, err
	}
	if latest.Key == base.Key {
		cur.Batch = batch{}
		cur.Retries = 0
		cur.Parent = base.Key
		return base, cur, false, nil
	}
	ls, err := decodeState(latest.Data)
	if err != nil {
		return nil, nil, false, err
	}
	if ls.Parent != base.Key {
		// The current state does not follow the phone's key: treat
		// the key as the newest (only possible if states were edited
		// outside the engine).
		cur.Batch = batch{}
		cur.Parent = base.Key
		return base, cur, false, nil
	}
	if ls.Amend {
		ls.Amend = false
		ls.Batch = batch{}
		ls.Retries = 0
		return base, ls, false, nil
	}
	ls.Retries++
	return base, ls, true, nil
}

// CurrentKey returns the SyncKey the phone holds for the collection (the
// current state's, or the key an amendment amends), for an empty or
// Partial Sync that names no keys (MS-ASCMD 2.2.2.20). It wraps
// ErrInvalidKey when the collection has no state.
func (e *Engine) CurrentKey(ctx context.Context, user, device, collection string) (string, error) {
	latest, err := e.Store.LatestSyncState(ctx, user, device, collection)
	if errors.Is(err, devices.ErrNotFound) {
		return "", fmt.Errorf("%w: collection %s has no state", ErrInvalidKey, collection)
	}
	if err != nil {
		return "", err
	}
	st, err := decodeState(latest.Data)
	if err != nil {
		return "", err
	}
	if st.Amend {
		return FormatKey(st.Parent), nil
	}
	return FormatKey(latest.Key), nil
}

// nextKey returns a key not equal to any the collection holds.
func (e *Engine) nextKey(ctx context.Context, req *Request, base *devices.SyncState) (uint64, error) {
	latest, err := e.Store.LatestSyncState(ctx, req.User, req.Device, req.Collection)
	if err != nil {
		return 0, err
	}
	return max(latest.Key, base.Key) + 1, nil
}

// Sync runs one collection of a Sync request. Errors are for conditions
// with no collection status (the device store failing); everything the
// phone is to see is in Result.Status.
func (e *Engine) Sync(ctx context.Context, req *Request) (*Result, error) {
	key, ok := ParseKey(req.SyncKey)
	if !ok {
		return &Result{Status: StatusInvalidSyncKey, SyncKey: "0"}, nil
	}
	if key == 0 {
		return e.prime(ctx, req)
	}
	done := make(map[int]Response) // commands already run, by index
	var effects []func(*state)
	var res *Result
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		res, err = e.sync(ctx, req, key, done, &effects)
		if !errors.Is(err, devices.ErrConflict) {
			break
		}
	}
	switch {
	case errors.Is(err, ErrInvalidKey):
		return &Result{Status: StatusInvalidSyncKey, SyncKey: "0"}, nil
	case errors.Is(err, devices.ErrConflict):
		// Two requests with the same key raced twice: the phone is
		// to try again.
		e.log().Warn("sync state conflict", "user", req.User, "device", req.Device, "collection", req.Collection)
		return &Result{Status: StatusRetry, SyncKey: req.SyncKey}, nil
	case errors.Is(err, backend.ErrUIDValidityChanged):
		// A chain that never read the folder (only primed) holds no
		// UIDs to invalidate: the folder the device's hierarchy names is
		// no longer the one in IMAP (deleted and made again under the
		// same name; imapstore's FolderIDs carry UIDVALIDITY). That
		// needs FolderSync (Status 12, as for a folder gone: the
		// eas/hierarchy contract); another Status 3 would only bring
		// the phone back here, for ever.
		primed, perr := e.primedOnly(ctx, req, key)
		if perr != nil {
			return nil, perr
		}
		if primed {
			return &Result{Status: StatusHierarchyChanged, SyncKey: req.SyncKey}, nil
		}
		// The UIDs the phone holds name other messages now: start over.
		if derr := e.Store.DeleteSyncStates(ctx, req.User, req.Device, req.Collection); derr != nil {
			return nil, derr
		}
		return &Result{Status: StatusInvalidSyncKey, SyncKey: "0"}, nil
	case errors.Is(err, backend.ErrFolderNotFound):
		return &Result{Status: StatusHierarchyChanged, SyncKey: req.SyncKey}, nil
	}
	return res, err
}

// primedOnly reports whether the state under key is a fresh prime: no
// snapshot of the folder taken, no request answered before it.
func (e *Engine) primedOnly(ctx context.Context, req *Request, key uint64) (bool, error) {
	base, err := e.Store.GetSyncState(ctx, req.User, req.Device, req.Collection, key)
	if errors.Is(err, devices.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	st, err := decodeState(base.Data)
	if err != nil {
		return false, err
	}
	return st.fresh(), nil
}

// prime answers SyncKey 0: a new chain with an empty snapshot, no items
// (MS-ASCMD 2.2.3.166.4). Commands with key 0 are a protocol error.
func (e *Engine) prime(ctx context.Context, req *Request) (*Result, error) {
	if len(req.Commands) > 0 {
		return &Result{Status: StatusProtocolError, SyncKey: "0"}, nil
	}
	// A second SyncKey 0 while the collection is as the first one left it
	// (iOS may start a folder twice, the second racing the first: the
	// digest §5, Z-Push PR #186) gets the same key, so the phone can go
	// on with either answer instead of meeting Status 3 with the other.
	latest, err := e.Store.LatestSyncState(ctx, req.User, req.Device, req.Collection)
	switch {
	case err == nil:
		if st, err := decodeState(latest.Data); err == nil && st.fresh() && st.Filter == req.Options.FilterType {
			return &Result{Status: StatusSuccess, SyncKey: FormatKey(latest.Key)}, nil
		}
	case !errors.Is(err, devices.ErrNotFound):
		return nil, err
	}
	st := &state{Filter: req.Options.FilterType}
	data, err := encodeState(st)
	if err != nil {
		return nil, err
	}
	next := &devices.SyncState{Key: newChainKey(), Data: data}
	if err := e.Store.PutSyncState(ctx, req.User, req.Device, req.Collection, nil, next); err != nil {
		return nil, err
	}
	return &Result{Status: StatusSuccess, SyncKey: FormatKey(next.Key)}, nil
}

func windowSize(n int) int {
	switch {
	case n <= 0:
		return DefaultWindowSize
	case n > MaxWindowSize:
		return MaxWindowSize
	}
	return n
}

func (e *Engine) sync(ctx context.Context, req *Request, key uint64, done map[int]Response, effects *[]func(*state)) (*Result, error) {
	base, cur, replay, err := e.load(ctx, req, key)
	if err != nil {
		return nil, err
	}
	res := &Result{Status: StatusSuccess, Replay: replay}
	for _, fx := range *effects {
		fx(cur)
	}
	// The client's commands: answers recorded for this key are given
	// again, others are run once per request.
	var results []result
	var server map[backend.UID][]string // current flags, for conflicts
	if !req.Options.ClientWins {
		if server, err = e.serverFlags(ctx, req, cur, replay, done); err != nil {
			return nil, err
		}
	}
	for i, c := range req.Commands {
		if c.Kind == CmdFetch {
			continue // answered below, read-only
		}
		id := c.ServerID
		if c.Kind == CmdAdd {
			id = c.ClientID
		}
		if r, ok := cur.Batch.find(c.Kind, id); ok && replay {
			results = append(results, r)
			continue
		}
		r, ok := done[i]
		if !ok {
			var fx func(*state)
			r, fx, err = e.runCommand(ctx, req, cur, c, server)
			if err != nil {
				return nil, err
			}
			done[i] = r
			if fx != nil {
				*effects = append(*effects, fx)
				fx(cur)
			}
		}
		results = append(results, result{Kind: c.Kind, ID: id, Status: r.Status, ServerID: r.ServerID})
	}
	win := windowSize(req.Options.WindowSize)
	var b batch
	primed := false   // the first snapshot is taken now: store it even if empty
	deferred := false // the scan was put off for the due items
	scanned := false  // the store was asked for changes with req's FilterType
	if replay {
		if cur.Retries > 1 {
			win = max(1, cur.Window>>1)
		} else {
			win = max(cur.Window, 1)
		}
		b = cur.Batch
		e.cutBatch(cur, &b, win)
	} else {
		primed = cur.Snap == nil
		switch {
		case !req.Options.GetChanges:
		case cur.scanWaits(req.Options.FilterType, e.now):
			res.Scan = backend.ScanSkipped // due items first
			deferred = true
		default:
			scan, err := e.collect(ctx, req, cur)
			if err != nil {
				return nil, err
			}
			res.Scan, scanned = scan, true
		}
		b = pick(cur, win, req.Options.GetChanges)
	}
	b.Results = results
	tried := b.Added // build keeps the set: it replaces b.Added
	ahead := e.planAhead(req, cur, win, replay, scanned)
	if err := e.build(ctx, req, cur, &b, res, ahead); err != nil {
		return nil, err
	}
	if deferred && b.size() == 0 && !b.More {
		// Every item due was expunged since the last scan, so this
		// round would be empty and Unchanged, and its state (without
		// them) not stored: each Sync within maxScanDefer would find
		// them due again and put the scan off again, holding back new
		// mail (while Ping, whose check scans, woke the phone for
		// nothing). Ask the store now instead.
		scan, err := e.collect(ctx, req, cur)
		if err != nil {
			return nil, err
		}
		res.Scan, scanned = scan, true
		b = pick(cur, win, true)
		// Items that failed to build just now stay due for the next
		// Sync rather than being tried (logged, counted) twice in this.
		if again := b.Added.Intersect(tried); again.Len() > 0 {
			b.Added = b.Added.Diff(again)
			cur.DueAdded = cur.DueAdded.Union(again)
		}
		b.Results = results
		if err := e.build(ctx, req, cur, &b, res, nil); err != nil {
			return nil, err
		}
	}
	for _, r := range b.Results {
		if (r.Kind == CmdChange || r.Kind == CmdDelete) && r.Status == StatusSuccess {
			continue // successful Changes and Deletes have no response (MS-ASCMD 2.2.3.24, 2.2.3.42)
		}
		res.Responses = append(res.Responses, Response{Kind: r.Kind, ServerID: rServerID(r), ClientID: rClientID(r), Status: r.Status})
	}
	for _, c := range req.Commands {
		if c.Kind == CmdFetch {
			res.Responses = append(res.Responses, e.fetch(ctx, req, c))
		}
	}
	if !replay && !primed && b.size() == 0 && len(req.Commands) == 0 && !b.More {
		res.Unchanged = true
		res.SyncKey = req.SyncKey
		return res, nil
	}
	cur.Batch = b
	cur.Window = win
	cur.Parent = base.Key
	if cur.Filter != req.Options.FilterType && !scanned {
		// The FilterType changed without a scan (a repeated key, or
		// GetChanges off): the snapshot and the items due are still of
		// the old window, so the next round must not put its scan off
		// for them (scanWaits compares with Filter, set below), or it
		// would add messages outside the window the phone asked for.
		cur.Scanned = 0
	}
	cur.Filter = req.Options.FilterType
	data, err := encodeState(cur)
	if err != nil {
		return nil, err
	}
	k, err := e.nextKey(ctx, req, base)
	if err != nil {
		return nil, err
	}
	if err := e.Store.PutSyncState(ctx, req.User, req.Device, req.Collection, base, &devices.SyncState{Key: k, Data: data}); err != nil {
		return nil, err
	}
	res.SyncKey = FormatKey(k)
	res.MoreAvailable = b.More
	return res, nil
}

func rServerID(r result) string {
	if r.Kind == CmdAdd {
		return r.ServerID
	}
	return r.ID
}

func rClientID(r result) string {
	if r.Kind == CmdAdd {
		return r.ID
	}
	return ""
}
