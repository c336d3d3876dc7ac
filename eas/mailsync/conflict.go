package mailsync

import (
	"context"
	"slices"
	"strings"

	"github.com/easgate/easgate/backend"
)

// Conflicts (MS-ASCMD 2.2.3.34, Conflict; digest §3.4): with the default
// Conflict 1 the server wins — a client Change of a message whose flags
// changed on the server since the phone last heard of them is not applied,
// the phone gets Status 7 for it, and the server's flags are sent as a
// Change (they are due already, or the next scan finds them because the
// snapshot still holds what the phone was told).

// serverFlags returns the current flags of the messages the request's
// Change commands name, in one round trip. Commands answered already
// (done, or a replayed key) are left out; nil when there is nothing to
// look up.
func (e *Engine) serverFlags(ctx context.Context, req *Request, cur *state, replay bool, done map[int]Response) (map[backend.UID][]string, error) {
	var uids backend.UIDSet
	for i, c := range req.Commands {
		if c.Kind != CmdChange {
			continue
		}
		if _, ok := done[i]; ok {
			continue
		}
		if _, ok := cur.Batch.find(c.Kind, c.ServerID); ok && replay {
			continue
		}
		if uid := ParseServerID(req.Collection, c.ServerID); uid != 0 {
			uids.AddUID(uid)
		}
	}
	if uids.Len() == 0 {
		return nil, nil
	}
	sums, err := req.Session.Summaries(ctx, req.Folder, uids)
	if err != nil {
		return nil, err
	}
	flags := make(map[backend.UID][]string, len(sums))
	for _, s := range sums {
		flags[s.UID] = s.Flags
	}
	return flags, nil
}

// conflicts reports whether the server changed uid since the phone last
// heard of it: a change is due to it, or the server's flags differ from
// the snapshot's. A message the server no longer has is not a conflict
// (the Change finds it missing: Status 8), nor one the phone has not been
// sent yet.
func conflicts(cur *state, uid backend.UID, server map[backend.UID][]string) bool {
	now, ok := server[uid]
	if !ok || cur.Snap == nil || !cur.Snap.UIDs.Contains(uid) || cur.DueAdded.Contains(uid) {
		return false
	}
	if cur.DueChanged.Contains(uid) {
		return true
	}
	return !sameFlags(cur.Snap.FlagsOf(uid), now)
}

// sameFlags compares two flag lists as sets, ignoring case and \Recent
// (which the snapshot does not track).
func sameFlags(a, b []string) bool {
	norm := func(fs []string) []string {
		var out []string
		for _, f := range fs {
			f = strings.ToLower(backend.CanonicalFlag(f))
			if f != strings.ToLower(backend.FlagRecent) && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(norm(a), norm(b))
}
