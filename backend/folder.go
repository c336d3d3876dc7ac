package backend

// FolderID names a folder for the life of the folder. It is opaque to the
// gateway, which maps it to the device's ServerId (at most 64 characters,
// MS-ASCMD 2.2.3.165.5); an ID may be longer than that. The empty FolderID
// is the top of the hierarchy.
type FolderID string

// Role is what a folder is for, from IMAP SPECIAL-USE (RFC 6154) or, when
// the server has no special-use attributes, from its well-known name. The
// gateway maps it to the EAS folder Type (MS-ASCMD 2.2.3.186.3).
type Role int

// The folder roles. At most one folder has each role other than RoleNone.
const (
	RoleNone   Role = iota // a user folder: Type 12
	RoleInbox              // INBOX: Type 2
	RoleDrafts             // \Drafts: Type 3
	RoleSent               // \Sent: Type 5
	RoleTrash              // \Trash: Type 4 (Deleted Items)
	RoleJunk               // \Junk: Type 12, but not renamable
)

// String returns the role's name, e.g. "inbox".
func (r Role) String() string {
	switch r {
	case RoleNone:
		return "none"
	case RoleInbox:
		return "inbox"
	case RoleDrafts:
		return "drafts"
	case RoleSent:
		return "sent"
	case RoleTrash:
		return "trash"
	case RoleJunk:
		return "junk"
	}
	return "unknown"
}

// Folder is one mail folder and its change marks.
type Folder struct {
	// ID names the folder; it changes when the folder is renamed, moved or
	// recreated.
	ID FolderID
	// Parent is the parent folder's ID, empty at the top level.
	Parent FolderID
	// Name is the full name on the server in UTF-8, e.g. "Work/2026".
	Name string
	// DisplayName is the last component of Name, e.g. "2026".
	DisplayName string
	// Delimiter separates the levels of Name, 0 for a flat hierarchy.
	Delimiter rune
	// Role says whether this is the Inbox, Drafts, Sent, Trash or Junk.
	Role Role
	// NoSelect marks a folder that holds only other folders.
	NoSelect bool

	// UIDValidity is the IMAP UIDVALIDITY; the folder's UIDs are valid
	// while it holds.
	UIDValidity uint32
	// UIDNext is the UID the next new message will get at least.
	UIDNext UID
	// Messages is the number of messages in the folder.
	Messages uint32
	// HighestModSeq is the CONDSTORE mod-sequence of the folder's last
	// change (RFC 7162), 0 when the server has no CONDSTORE.
	HighestModSeq uint64
}
