// Package mailsync is the Sync engine for mail collections: the SyncKey
// state machine, change detection against the mail store, windowing and
// the client's own commands (MS-ASCMD 2.2.1.21). It knows nothing of HTTP
// or WBXML documents beyond the ApplicationData of one item: eas/sync.go
// parses the request and writes the response around it.
//
// # State
//
// Each collection's state (devices.SyncState.Data) is the phone's view of
// the folder after it applied the response that carried the state's key: a
// backend.FolderState snapshot (compact UID sets), the changes found but
// not yet sent because of WindowSize (due sets), and the batch that
// response carried. Messages found but not yet added are tracked in the
// snapshot and kept in a due set of their own (state.DueAdded), so the
// later rounds of a paged initial sync ask the store only whether the
// folder's change marks moved (one STATUS with CONDSTORE) instead of
// rescanning it.
//
// # SyncKey rule
//
// devices.Store keeps the current state (key N+1) and the previous one
// (key N). When the phone sends N again, it never saw the response that
// carried N+1, so the engine answers with that state's batch again (the
// same Adds, Changes, Deletes and command results, the Adds rebuilt from
// the store) under a new key: nothing the phone missed is lost and
// nothing is doubled. A phone that keeps retrying gets the batch cut in
// half each time (down to one item), the rest stays due. Status 3 is
// answered only when the key is truly unknown or the folder's UIDVALIDITY
// changed (then the collection's state is deleted, so the phone starts
// over from 0).
//
// When nothing changed and the phone sent no commands, no state is written
// and the phone keeps its key (Result.Unchanged): the HTTP layer leaves the
// collection out, or sends the empty response (MS-ASCMD 2.2.2.20).
//
// MoveItems and other out-of-band edits amend the current state without
// taking the phone's key away (Engine.Amend): the current state is edited
// and stored again under its own key, the previous one kept (the phone may
// hold either), or, when there is no previous one, the amended state is
// stored under a fresh key marked as an amendment of the phone's key,
// which a later Sync with that key adopts.
package mailsync
