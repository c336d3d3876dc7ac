// Package backend defines the mail store as EAS needs it, independent of the
// protocol that reaches it. The gateway's commands speak only to these
// interfaces; backend/imapstore implements them over IMAP and
// backend/smtpsend implements sending over SMTP.
//
// The shape follows the EAS commands rather than IMAP: a Store hands out a
// per-user Session (cheap when pooled, so the gateway opens one per HTTP
// request); a Session lists and edits folders (FolderSync, FolderCreate,
// FolderUpdate, FolderDelete), reports what changed in a folder since a
// FolderState the gateway kept (Sync, GetItemEstimate, Ping), reads
// messages (Sync Add, ItemOperations), and changes them (Sync Change and
// Delete, MoveItems, SendMail's SaveInSentItems, 16.x drafts).
//
// Folders and messages are named by FolderID and UID. A FolderID is opaque
// to the gateway; a message is (FolderID, UID) and stays the same message
// while the folder's UIDVALIDITY holds.
package backend

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrAuthFailed reports that the mail server refused the user's credentials.
// The phone sees HTTP 401; the log gets the wrapped cause.
var ErrAuthFailed = errors.New("backend: authentication failed")

// ErrUnavailable reports that the mail server could not be reached or failed
// in a way that retrying later may fix. The phone sees 503 with Retry-After
// (or the in-body status 111 from 14.0).
var ErrUnavailable = errors.New("backend: mail server unavailable")

// Authenticator checks a user's credentials against the mail server.
type Authenticator interface {
	// Authenticate returns nil when the server accepts user and password,
	// an error wrapping ErrAuthFailed when it refuses them, and an error
	// wrapping ErrUnavailable when it cannot tell.
	Authenticate(ctx context.Context, user, password string) error
}

// Store is a mail store that hands out per-user sessions.
type Store interface {
	Authenticator

	// Open returns a session for user, checking password as Authenticate
	// does (ErrAuthFailed, ErrUnavailable). Implementations pool the
	// underlying connections per user, so Open is meant to be called on
	// every EAS request; a password that differs from the one the pool
	// logged in with is checked afresh with the server, never trusted.
	// The caller must Close the session.
	Open(ctx context.Context, user, password string) (Session, error)
}

// Session is one user's view of the mail store. Its methods are safe for
// concurrent use; each call may run on its own pooled connection. Errors
// wrap the sentinel errors of this package (ErrFolderNotFound,
// ErrMessageNotFound, ErrUIDValidityChanged, ErrUnavailable, ...) so the
// gateway can choose the EAS status; anything else is a server error.
type Session interface {
	// Folders lists the user's folders, parents before children, with their
	// roles and change marks, in as few round trips as the server allows
	// (one LIST with RETURN (SPECIAL-USE STATUS (...)) on IMAP).
	// FolderSync (MS-ASCMD 2.2.1.5) builds the hierarchy from it; Ping and
	// GetItemEstimate may use the change marks.
	Folders(ctx context.Context) ([]Folder, error)

	// CreateFolder creates a folder called name under parent (the empty
	// FolderID for the top level) and returns it. Errors: ErrFolderExists,
	// ErrParentNotFound, ErrInvalidName. FolderCreate (MS-ASCMD 2.2.1.3).
	CreateFolder(ctx context.Context, parent FolderID, name string) (Folder, error)

	// RenameFolder renames the folder and/or moves it under newParent (the
	// empty FolderID for the top level) and returns it under its new ID
	// (IDs may derive from the name). Errors: ErrFolderNotFound,
	// ErrSpecialFolder (the Inbox and folders with a role other than
	// RoleNone), ErrParentNotFound, ErrFolderExists, ErrInvalidName.
	// FolderUpdate (MS-ASCMD 2.2.1.4).
	RenameFolder(ctx context.Context, id, newParent FolderID, newName string) (Folder, error)

	// DeleteFolder deletes the folder and its messages. Errors:
	// ErrFolderNotFound, ErrSpecialFolder. FolderDelete (MS-ASCMD 2.2.1.2).
	DeleteFolder(ctx context.Context, id FolderID) error

	// Changes reports what happened in the folder since the snapshot since
	// (nil for the first time: every message in the window is Added) and
	// returns the new snapshot in ChangeSet.State. Only messages whose
	// arrival date falls on or after window's day (IMAP SINCE; zero means
	// no window) are added or tracked; tracked messages that fall out of
	// the window are reported as AgedOut (EAS SoftDelete). Added
	// messages are tracked without their flags (see ChangeSet.Added).
	// Errors:
	// ErrFolderNotFound, ErrUIDValidityChanged (the caller resets the
	// collection: Sync Status 3). Sync (MS-ASCMD 2.2.1.21),
	// GetItemEstimate (2.2.1.9), and Ping (2.2.1.13) after a wake-up.
	Changes(ctx context.Context, id FolderID, since *FolderState, window time.Time) (*ChangeSet, error)

	// Search returns the UIDs of the messages whose arrival date falls on
	// or after window's day (all messages if window is zero). Sync's first
	// round and GetItemEstimate before priming.
	Search(ctx context.Context, id FolderID, window time.Time) (UIDSet, error)

	// Recheck returns those of uids whose messages the folder holds now,
	// and the flags of those whose flags changed since the mod-sequence
	// since (RFC 7162 CHANGEDSINCE; where the server has no CONDSTORE, or
	// since is 0, the flags of all of them). Sync checks with it that
	// messages read ahead for a round are still there, and still flagged
	// so, when the round sends them.
	Recheck(ctx context.Context, id FolderID, uids UIDSet, since uint64) (live UIDSet, flags []FlagChange, err error)

	// Summaries returns the summary (envelope, flags, arrival date, size,
	// MIME structure) of each message in uids that still exists, in UID
	// order; missing UIDs are left out. Sync Add's ApplicationData
	// (MS-ASEMAIL 2.2.2) and the Attachments block (MS-ASAIRS 2.2.2.7).
	Summaries(ctx context.Context, id FolderID, uids UIDSet) ([]Summary, error)

	// Contents reads the raw contents of many messages at once, without
	// setting \Seen: for each request, the parts it names (and the
	// summary, if asked) of every message in its UIDs that still exists
	// (missing UIDs are left out),
	// in one round trip per request on IMAP (one UID FETCH with
	// BODY.PEEK[...]<0.n> items). f is called once per message as it
	// arrives, in the server's order, never concurrently; the slices in
	// Contents are the caller's to keep. An error from f stops the read
	// and is returned as is. Errors: ErrFolderNotFound,
	// ErrUIDValidityChanged, ErrInvalidSection (a malformed Part),
	// ErrUnavailable. Sync Add's bodies for a whole window
	// (MS-ASCMD 2.2.3.7.2, MS-ASAIRS 2.2.2.9).
	Contents(ctx context.Context, id FolderID, reqs []ContentRequest, f func(Contents) error) error

	// Section returns at most limit bytes (limit <= 0: all) starting at
	// offset of one part of a message, as stored (transfer-encoded),
	// without setting \Seen. part is an IMAP section: "" for the whole
	// message, "HEADER", "TEXT", "1.2", "1.2.MIME". Errors:
	// ErrMessageNotFound, ErrInvalidSection. Truncated bodies in Sync
	// (TruncationSize) and ItemOperations Fetch with a Range
	// (MS-ASCMD 2.2.1.10).
	Section(ctx context.Context, id FolderID, uid UID, part string, offset, limit int64) ([]byte, error)

	// OpenPart opens one leaf part of a message ("1", "2.1"; not a
	// multipart, not HEADER or TEXT) for streaming, decoded from its
	// Content-Transfer-Encoding unless opts.Raw, without setting \Seen.
	// A part in an encoding the server does not know is read as stored.
	// It returns when the bytes have begun to arrive, so the reader's
	// Size is known where the server can tell it (IMAP BINARY: the
	// length of the decoded literal). The reader holds a connection until
	// it is closed, and ctx bounds the reading too. Errors:
	// ErrMessageNotFound, ErrInvalidSection (malformed, missing or
	// multipart), ErrFolderNotFound, ErrUIDValidityChanged.
	// ItemOperations Fetch of an attachment, with Range (MS-ASCMD
	// 2.2.1.10).
	OpenPart(ctx context.Context, id FolderID, uid UID, part string, opts PartOptions) (PartReader, error)

	// Message streams the whole RFC 5322 message as stored (IMAP
	// BODY.PEEK[]), without setting \Seen. It returns when the bytes have
	// begun to arrive: the reader's Size and Total are the message's
	// exact length (the IMAP literal's), and a message that turns out
	// longer or shorter is a read error. The reader holds a connection
	// until it is closed, and ctx bounds the reading too; the caller must
	// Close it. Errors: ErrMessageNotFound, ErrFolderNotFound,
	// ErrUIDValidityChanged. MIME bodies (BodyPreference Type 4, streamed
	// by ItemOperations Fetch: MS-ASCMD 2.2.1.10), SmartReply and
	// SmartForward's original.
	Message(ctx context.Context, id FolderID, uid UID) (PartReader, error)

	// StoreFlags adds and removes flags and keywords ("\Seen", "\Flagged",
	// "\Answered", "$Forwarded", or any keyword) on one message and
	// returns its flags afterwards. Errors: ErrMessageNotFound. Sync
	// Change of Read, Flag and Categories (MS-ASEMAIL 2.2.2.49, 2.2.2.34);
	// SmartReply/SmartForward's \Answered and $Forwarded.
	StoreFlags(ctx context.Context, id FolderID, uid UID, add, remove []string) ([]string, error)

	// Move moves one message to dst and returns its UID there (0 when
	// the server does not say: IMAP without UIDPLUS). Errors:
	// ErrMessageNotFound, ErrFolderNotFound (source), ErrDestNotFound,
	// ErrSameFolder. MoveItems (MS-ASCMD 2.2.1.12) and Sync Delete with
	// DeletesAsMoves.
	Move(ctx context.Context, id FolderID, uid UID, dst FolderID) (UID, error)

	// Delete removes one message: with toTrash and a Trash folder that is
	// not the message's own folder, it is moved there (Deleted.Trash and
	// Deleted.UID say where); otherwise it is marked \Deleted and expunged
	// alone (UID EXPUNGE), and Deleted is the zero value. Errors:
	// ErrMessageNotFound. Sync Delete (MS-ASCMD 2.2.3.42.2) with and
	// without DeletesAsMoves.
	Delete(ctx context.Context, id FolderID, uid UID, toTrash bool) (Deleted, error)

	// EmptyFolder expunges every message in the folder and, with
	// subfolders, deletes the folders below it. Errors: ErrFolderNotFound,
	// ErrSpecialFolder (a subfolder with a role). ItemOperations
	// EmptyFolderContents (MS-ASCMD 2.2.3.58), usually on Deleted Items.
	EmptyFolder(ctx context.Context, id FolderID, subfolders bool) error

	// Append stores a message in the folder and returns its UID. Errors:
	// ErrFolderNotFound. SendMail's SaveInSentItems (MS-ASCMD 2.2.1.17),
	// 16.x draft Adds.
	Append(ctx context.Context, id FolderID, msg AppendMessage) (UID, error)

	// Close releases the session's resources (pooled connections stay in
	// the pool). Calls after Close fail with ErrClosed.
	Close() error
}

// PartOptions says how Session.OpenPart reads a part.
type PartOptions struct {
	// Raw keeps the part's transfer encoding (IMAP BODY.PEEK[part]);
	// otherwise the part is decoded (IMAP BINARY.PEEK[part]).
	Raw bool
	// Offset is the first byte to read, counted in the form read
	// (decoded unless Raw); Limit is how many at most (<= 0: to the end).
	Offset, Limit int64
}

// PartReader streams a message part opened with Session.OpenPart, or a
// whole message opened with Session.Message. Read
// fails with an error wrapping ErrUnavailable when the connection breaks;
// a part that turns out longer or shorter than Size said is an error too,
// never silently cut or padded.
type PartReader interface {
	io.ReadCloser
	// Size is the number of bytes Read yields before io.EOF (the part
	// from Offset, at most Limit), or -1 when it is not known before
	// reading (decoded by the gateway for a server without IMAP BINARY).
	Size() int64
	// Total is the size of the whole part in the form read, or -1 when
	// not known before reading.
	Total() int64
}

// AppendMessage is a message to store with Session.Append.
type AppendMessage struct {
	// Flags set on the stored message, e.g. "\Seen" for Sent, "\Draft".
	Flags []string
	// Date is the arrival date (INTERNALDATE); zero means now.
	Date time.Time
	// Size is the exact length of Body in bytes.
	Size int64
	// Body is the RFC 5322 message, Size bytes long.
	Body io.Reader
}

// Deleted says where Session.Delete put a message.
type Deleted struct {
	// Trash is the folder the message was moved to; empty when it was
	// expunged.
	Trash FolderID
	// UID is the message's UID in Trash (0 when expunged or unknown).
	UID UID
}

// Watcher is a Session that can be told of changes to a folder without
// polling (IMAP IDLE). The gateway's shared per-user watcher (eas/push.Hub)
// uses it for the Inbox, on behalf of every Ping (MS-ASCMD 2.2.1.13) and
// hanging Sync (2.2.3.88) of the user; for a Session without it, or while
// it is down, the watcher polls the folders' change marks (Folders).
type Watcher interface {
	// Watch opens a connection of its own, outside the per-user pool
	// bound, waits on the folder there (IDLE), and returns once the
	// server waits: a change made after Watch returned is reported by a
	// call of changed, from any goroutine, each time the server reports
	// that the folder changed (a message arrived or was expunged, or
	// flags changed: any client's, the gateway's own included). changed
	// must not block or call the Session. The Watch lasts until Close,
	// the end of ctx, or the connection's failure. Errors:
	// ErrFolderNotFound, ErrUIDValidityChanged, ErrUnavailable.
	Watch(ctx context.Context, id FolderID, changed func()) (Watch, error)
}

// Watch is a running Watcher.Watch.
type Watch interface {
	// Folders is Session.Folders on the watch's connection: the wait
	// pauses for it (changes meanwhile are still reported), so that a
	// user's watcher needs no other connection.
	Folders(ctx context.Context) ([]Folder, error)
	// Done is closed when the watch has ended; Err then says why: nil
	// after Close, ctx's error (wrapped) after its end, ErrUnavailable
	// when the connection failed.
	Done() <-chan struct{}
	Err() error
	// Close ends the watch and closes its connection. Calling it again
	// does nothing.
	Close() error
}
