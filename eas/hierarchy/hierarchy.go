// Package hierarchy keeps a device's view of the user's folder tree: which
// EAS ServerId stands for which mail-store folder, what the device was last
// told about each (ParentId, DisplayName, Type), and the SyncKey that view
// answers to. It is the FolderSync engine (MS-ASCMD 2.2.1.5) and the state
// behind FolderCreate, FolderUpdate and FolderDelete (2.2.1.3, 2.2.1.4,
// 2.2.1.2), kept apart from HTTP and WBXML so that its rules can be tested
// on their own.
//
// # ServerIds
//
// A ServerId is a short decimal number the engine assigns ("1", "2", …)
// and keeps in the hierarchy state for the life of the partnership. It is
// never derived from the folder's name or its backend.FolderID, so renames
// and moves keep it, and a number once handed out is never given to another
// folder (the state carries the next free number; "0" is the ParentId of
// the top level and never a ServerId).
//
// The backend's FolderID may change when a folder is renamed (imapstore's
// IDs are UIDVALIDITY plus name). A folder of the state is therefore found
// in a fresh listing by, in this order: the same FolderID; for renames the
// gateway itself made, the rename's old name prefix mapped to the new one
// (which also covers children without UIDVALIDITY, such as \Noselect
// folders); and the same non-zero UIDVALIDITY, when no other folder, known
// or listed, has that value (IMAP RENAME keeps UIDVALIDITY, RFC 9051
// 6.3.6, and Dovecot gives each mailbox its own; on a server that gives all
// mailboxes one value the rule never fires, so a deleted folder is never
// mistaken for a new one and its UIDs never misread). A
// folder found none of these ways is a Delete of the old ServerId and an
// Add of a new one. With a server whose IDs do not change on rename
// (MAILBOXID, RFC 8474) the first rule always applies.
//
// # Folder types
//
// INBOX is Type 2, the Drafts folder 3, Trash 4 ("Deleted Items"), Sent 5,
// everything else 12 (user mail), Junk included. Roles come from the
// backend (SPECIAL-USE or well-known names) unless Options.RoleOverrides
// names the folder. Exactly one folder holds each role: when several claim
// one, an override wins, then the folder that held it before, then the
// first in the listing; the others are Type 12.
//
// # SyncKeys
//
// The state is stored with devices.Store under devices.HierarchyCollection
// with its compare-and-set rules: the current key N+1 and the previous key
// N are both accepted, and a request with N whose answer (N+1) is the
// current state gets that same answer again, byte for byte. SyncKey 0 from
// a device that already has a hierarchy (Gmail sends it on pull-to-refresh,
// the digest §3.2) answers every folder as an Add under the ServerId it
// already had, and deletes the Sync states only of folders that are gone.
//
// # Use by other commands
//
// Sync, Ping, GetItemEstimate and MoveItems translate CollectionIds with
// Load and the Hierarchy lookups:
//
//	h, err := hierarchy.Load(ctx, store, user, device) // devices.ErrNotFound: no FolderSync yet
//	f, ok := h.Folder(collectionID)                     // ServerId → backend.FolderID, Role, Name
//	sid, ok := h.ServerID(folderID)                     // and back
//	trash, ok := h.ByRole(backend.RoleTrash)
//
// A Hierarchy is what the device was last told. When the mail store has
// changed since (a folder renamed in webmail), backend calls with the stored
// FolderID fail with backend.ErrFolderNotFound or ErrUIDValidityChanged;
// the command then answers its "hierarchy changed" status (Sync 12, Ping 7)
// and the device runs FolderSync, which brings the mapping up to date.
package hierarchy

import (
	"context"
	"fmt"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
)

// EAS folder types (MS-ASCMD 2.2.3.186.3) the engine hands out.
const (
	TypeUserGeneric = 1 // accepted from FolderCreate; created as mail
	TypeInbox       = 2
	TypeDrafts      = 3
	TypeDeleted     = 4
	TypeSent        = 5
	TypeUserMail    = 12
)

// RootID is the ParentId of top-level folders (MS-ASCMD 2.2.3.123.3).
const RootID = "0"

// Folder is one folder as the device knows it, with the mail-store folder
// behind it.
type Folder struct {
	ServerID    string `json:"sid"`  // the device's name for the folder (CollectionId in Sync)
	ParentID    string `json:"pid"`  // the parent's ServerID, RootID at the top level
	DisplayName string `json:"name"` // the last component of the name
	Type        int    `json:"type"` // EAS folder type (TypeInbox, …, TypeUserMail)

	ID          backend.FolderID `json:"id"`             // the mail store's ID of the folder
	Name        string           `json:"full"`           // full name on the mail server, e.g. "Work/2026"
	Role        backend.Role     `json:"role,omitempty"` // the role this folder holds (after overrides and deduplication)
	UIDValidity uint32           `json:"uv,omitempty"`   // as last listed; 0 for folders that cannot be selected
	NoSelect    bool             `json:"noselect,omitempty"`
}

// Hierarchy is a device's folder tree as stored with one SyncKey. It is
// read-only.
type Hierarchy struct {
	key     uint64
	folders []Folder
	bySID   map[string]int
	byID    map[backend.FolderID]int
}

func newHierarchy(key uint64, folders []Folder) *Hierarchy {
	h := &Hierarchy{key: key, folders: folders, bySID: make(map[string]int, len(folders)), byID: make(map[backend.FolderID]int, len(folders))}
	for i, f := range folders {
		h.bySID[f.ServerID] = i
		h.byID[f.ID] = i
	}
	return h
}

// Load returns the device's current hierarchy: the one with the latest
// SyncKey. It returns an error wrapping devices.ErrNotFound when the device
// has never run FolderSync.
func Load(ctx context.Context, store devices.Store, user, device string) (*Hierarchy, error) {
	st, err := store.LatestSyncState(ctx, user, device, devices.HierarchyCollection)
	if err != nil {
		return nil, fmt.Errorf("hierarchy: loading: %w", err)
	}
	s, err := decodeState(st.Data)
	if err != nil {
		return nil, err
	}
	return newHierarchy(st.Key, s.Folders), nil
}

// SyncKey returns the hierarchy's FolderSync SyncKey.
func (h *Hierarchy) SyncKey() uint64 { return h.key }

// Folders returns the folders, parents before children.
func (h *Hierarchy) Folders() []Folder { return append([]Folder(nil), h.folders...) }

// Folder returns the folder with the ServerId (a Sync CollectionId).
func (h *Hierarchy) Folder(serverID string) (Folder, bool) {
	i, ok := h.bySID[serverID]
	if !ok {
		return Folder{}, false
	}
	return h.folders[i], true
}

// ServerID returns the ServerId of the mail-store folder id.
func (h *Hierarchy) ServerID(id backend.FolderID) (string, bool) {
	i, ok := h.byID[id]
	if !ok {
		return "", false
	}
	return h.folders[i].ServerID, true
}

// ByRole returns the folder holding role (RoleInbox, RoleDrafts, RoleSent,
// RoleTrash, RoleJunk); there is at most one.
func (h *Hierarchy) ByRole(role backend.Role) (Folder, bool) {
	if role == backend.RoleNone {
		return Folder{}, false
	}
	for _, f := range h.folders {
		if f.Role == role {
			return f, true
		}
	}
	return Folder{}, false
}

// typeOf maps a role to the EAS folder type.
func typeOf(r backend.Role) int {
	switch r {
	case backend.RoleInbox:
		return TypeInbox
	case backend.RoleDrafts:
		return TypeDrafts
	case backend.RoleTrash:
		return TypeDeleted
	case backend.RoleSent:
		return TypeSent
	}
	return TypeUserMail
}
