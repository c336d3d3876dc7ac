package mailsync

import "github.com/easgate/easgate/backend"

// SnapshotForBench returns the snapshot stored in a state, for the
// benchmark that times Session.Changes alone.
func SnapshotForBench(data []byte) *backend.FolderState {
	st, err := decodeState(data)
	if err != nil {
		return nil
	}
	return st.Snap
}

// AwaitReadAhead waits until the read ahead of the device's collection,
// if one is kept, has read what it could, so that a test can change the
// folder after it and before the round that takes it.
func AwaitReadAhead(e *Engine, user, device, collection string) bool {
	e.ahead.mu.Lock()
	ra := e.ahead.m[aheadKey{user, device, collection}]
	e.ahead.mu.Unlock()
	if ra == nil {
		return false
	}
	<-ra.ended
	return true
}
