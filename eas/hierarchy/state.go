package hierarchy

import (
	"encoding/json"
	"fmt"
)

// stateVersion is the format of the stored state; a state of another
// format is refused rather than misread.
const stateVersion = 1

// state is what the engine stores as devices.SyncState.Data of the
// hierarchy collection: the folders as the device was told about them, the
// next free ServerId number, and how this state came to be, so that a
// repeated request gets the same answer.
type state struct {
	Version int      `json:"v"`
	NextID  uint64   `json:"next"` // the next ServerId number to hand out
	Folders []Folder `json:"folders"`

	// BaseKey is the SyncKey of the request that made this state (0 for
	// SyncKey 0), and Answer what it was answered: a request repeating
	// BaseKey while this state is current gets Answer again.
	BaseKey uint64  `json:"base,omitempty"`
	Answer  *answer `json:"answer,omitempty"`
}

// answer is what a state-changing request was answered, to replay it.
type answer struct {
	// Request identifies the request: the command and its arguments (see
	// fingerprint).
	Request string `json:"req"`
	// Update, Delete and Add are FolderSync's changes by ServerId; the
	// Updated and Added folders are the state's own, as they were sent.
	Update []string `json:"update,omitempty"`
	Delete []string `json:"delete,omitempty"`
	Add    []string `json:"add,omitempty"`
	// ServerID is the folder FolderCreate made.
	ServerID string `json:"sid,omitempty"`
}

// record stores c in the answer by ServerId.
func (a *answer) record(c *Changes) {
	for _, f := range c.Update {
		a.Update = append(a.Update, f.ServerID)
	}
	a.Delete = c.Delete
	for _, f := range c.Add {
		a.Add = append(a.Add, f.ServerID)
	}
}

// changes rebuilds the recorded changes from the folders of the state the
// answer made.
func (a *answer) changes(folders []Folder) *Changes {
	bySID := make(map[string]Folder, len(folders))
	for _, f := range folders {
		bySID[f.ServerID] = f
	}
	c := &Changes{Delete: a.Delete}
	for _, sid := range a.Update {
		c.Update = append(c.Update, bySID[sid])
	}
	for _, sid := range a.Add {
		c.Add = append(c.Add, bySID[sid])
	}
	return c
}

// Changes are a FolderSync response's changes (MS-ASCMD 2.2.3.25), in the
// order the response lists them.
type Changes struct {
	Update []Folder `json:"update,omitempty"`
	Delete []string `json:"delete,omitempty"` // ServerIds
	Add    []Folder `json:"add,omitempty"`
}

// Count returns the number of changes (MS-ASCMD 2.2.3.37).
func (c *Changes) Count() int {
	if c == nil {
		return 0
	}
	return len(c.Update) + len(c.Delete) + len(c.Add)
}

func decodeState(data []byte) (*state, error) {
	var s state
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("hierarchy: decoding the stored state: %w", err)
	}
	if s.Version != stateVersion {
		return nil, fmt.Errorf("hierarchy: stored state has format %d, want %d", s.Version, stateVersion)
	}
	return &s, nil
}

func (s *state) encode() ([]byte, error) {
	s.Version = stateVersion
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("hierarchy: encoding the state: %w", err)
	}
	return b, nil
}
