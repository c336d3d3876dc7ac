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
