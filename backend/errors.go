package backend

import "errors"

// Errors a Session returns, wrapped with the cause. The comments give the
// EAS status the gateway usually answers with.
var (
	// ErrClosed: the session was used after Close.
	ErrClosed = errors.New("backend: session closed")

	// ErrFolderNotFound: no folder has this ID (deleted, renamed or
	// recreated). FolderUpdate/FolderDelete Status 4; Sync Status 12
	// (hierarchy changed: run FolderSync); MoveItems Status 1.
	ErrFolderNotFound = errors.New("backend: folder not found")

	// ErrFolderExists: a folder with the target name already exists.
	// FolderCreate/FolderUpdate Status 2.
	ErrFolderExists = errors.New("backend: folder already exists")

	// ErrParentNotFound: the parent folder does not exist. FolderCreate/
	// FolderUpdate Status 5.
	ErrParentNotFound = errors.New("backend: parent folder not found")

	// ErrSpecialFolder: the Inbox and folders with a role cannot be
	// renamed, moved or deleted. FolderUpdate/FolderDelete Status 3.
	ErrSpecialFolder = errors.New("backend: special folder cannot be changed")

	// ErrInvalidName: the folder name is empty or contains the hierarchy
	// delimiter. FolderCreate/FolderUpdate Status 10 (malformed request).
	ErrInvalidName = errors.New("backend: invalid folder name")

	// ErrUIDValidityChanged: the folder's UIDVALIDITY differs from the
	// one the caller's state or ID was made with, so the UIDs the caller
	// holds no longer name the same messages (the folder was recreated or
	// the server rebuilt its index). Sync Status 3: the client restarts
	// the collection from SyncKey 0, and the next FolderSync shows the
	// folder under its new ID.
	ErrUIDValidityChanged = errors.New("backend: folder UIDVALIDITY changed")

	// ErrMessageNotFound: no message has this UID in the folder. Sync
	// Change/Delete/Fetch Status 8; MoveItems Status 1; ItemOperations
	// Status 15 (attachment) or 6.
	ErrMessageNotFound = errors.New("backend: message not found")

	// ErrDestNotFound: the destination folder of a move does not exist.
	// MoveItems Status 2.
	ErrDestNotFound = errors.New("backend: destination folder not found")

	// ErrSameFolder: a move whose source and destination are the same.
	// MoveItems Status 4.
	ErrSameFolder = errors.New("backend: source and destination are the same folder")

	// ErrInvalidSection: a malformed message part specifier.
	// ItemOperations Status 15.
	ErrInvalidSection = errors.New("backend: invalid message section")
)
