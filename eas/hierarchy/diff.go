package hierarchy

import (
	"strconv"
	"strings"

	"github.com/easgate/easgate/backend"
)

// Options configure how folders are presented.
type Options struct {
	// RoleOverrides gives folders a role by full name, for servers
	// without SPECIAL-USE whose folders have names the backend does not
	// know (e.g. "Gesendet" → backend.RoleSent), or to take a role away
	// (backend.RoleNone). Names are matched exactly, then without regard
	// to case. An override wins over the backend's role.
	RoleOverrides map[string]backend.Role
}

// override returns the role the options give the folder name, if any.
func (o Options) override(name string) (backend.Role, bool) {
	if r, ok := o.RoleOverrides[name]; ok {
		return r, true
	}
	for n, r := range o.RoleOverrides {
		if strings.EqualFold(n, name) {
			return r, true
		}
	}
	return backend.RoleNone, false
}

// rename describes a rename the gateway made, to find the renamed folder
// and its children in the next listing when their IDs changed.
type rename struct {
	from, to string // full names before and after
	delim    rune   // hierarchy delimiter, 0 for flat
}

// renamed returns the name a folder called name has after r, if r moved it.
func (r *rename) renamed(name string) (string, bool) {
	if r == nil {
		return "", false
	}
	if name == r.from {
		return r.to, true
	}
	if r.delim != 0 {
		prefix := r.from + string(r.delim)
		if rest, ok := strings.CutPrefix(name, prefix); ok {
			return r.to + string(r.delim) + rest, true
		}
	}
	return "", false
}

// match pairs live folders with the known folders (see the package
// documentation for the rules) and returns, per live folder, the index of
// its known folder or -1.
func match(known []Folder, live []backend.Folder, hint *rename) []int {
	out := make([]int, len(live))
	used := make([]bool, len(known))
	byID := make(map[backend.FolderID]int, len(known))
	for i, k := range known {
		byID[k.ID] = i
	}
	for i, f := range live {
		out[i] = -1
		if k, ok := byID[f.ID]; ok && !used[k] {
			out[i], used[k] = k, true
		}
	}
	if hint != nil {
		byName := make(map[string]int)
		for i, f := range live {
			if out[i] < 0 {
				byName[f.Name] = i
			}
		}
		for k, f := range known {
			if used[k] {
				continue
			}
			if to, ok := hint.renamed(f.Name); ok {
				if i, ok := byName[to]; ok && out[i] < 0 {
					out[i], used[k] = k, true
				}
			}
		}
	}
	// UIDVALIDITY: pair a vanished and a new folder only when no other
	// folder, known or listed, carries the value. Servers that give every
	// mailbox the same UIDVALIDITY thus never pair folders (a rename there
	// is a Delete and an Add), because pairing a deleted folder with a
	// new one would make the device read the new folder's UIDs as the old
	// one's.
	knownUV := map[uint32][]int{}
	for k, f := range known {
		if f.UIDValidity != 0 {
			knownUV[f.UIDValidity] = append(knownUV[f.UIDValidity], k)
		}
	}
	liveUV := map[uint32][]int{}
	for i, f := range live {
		if f.UIDValidity != 0 {
			liveUV[f.UIDValidity] = append(liveUV[f.UIDValidity], i)
		}
	}
	for uv, is := range liveUV {
		ks := knownUV[uv]
		if len(is) == 1 && len(ks) == 1 && out[is[0]] < 0 && !used[ks[0]] {
			out[is[0]], used[ks[0]] = ks[0], true
		}
	}
	return out
}

// present builds the folder list for live: each live folder keeps the
// ServerId of its match in known (matches[i] >= 0) or gets the next free
// number, and gets its EAS ParentId, DisplayName, Type and role. It returns
// the folders, in live's order, and the next free number.
func present(known []Folder, live []backend.Folder, matches []int, nextID uint64, opts Options) ([]Folder, uint64) {
	if nextID == 0 {
		nextID = 1
	}
	out := make([]Folder, len(live))
	sidOf := make(map[backend.FolderID]string, len(live))
	for i, f := range live {
		var sid string
		if k := matches[i]; k >= 0 {
			sid = known[k].ServerID
		} else {
			sid = strconv.FormatUint(nextID, 10)
			nextID++
		}
		sidOf[f.ID] = sid
		out[i] = Folder{ServerID: sid, ID: f.ID, Name: f.Name, UIDValidity: f.UIDValidity, NoSelect: f.NoSelect,
			DisplayName: displayName(f)}
	}
	for i, f := range live {
		out[i].ParentID = RootID
		if f.Parent != "" {
			if p, ok := sidOf[f.Parent]; ok {
				out[i].ParentID = p
			}
		}
	}
	assignRoles(out, known, live, matches, opts)
	for i := range out {
		out[i].Type = typeOf(out[i].Role)
	}
	return out, nextID
}

// displayName is the folder's DisplayName, falling back to the last
// component of its name.
func displayName(f backend.Folder) string {
	if f.DisplayName != "" {
		return f.DisplayName
	}
	if f.Delimiter != 0 {
		if i := strings.LastIndex(f.Name, string(f.Delimiter)); i >= 0 {
			return f.Name[i+1:]
		}
	}
	return f.Name
}

// assignRoles gives each role to one folder: an override first, then the
// folder that held it before, then the first claimant in listing order.
// INBOX keeps RoleInbox whatever the overrides say.
func assignRoles(out []Folder, known []Folder, live []backend.Folder, matches []int, opts Options) {
	type claim struct {
		role     backend.Role
		override bool
	}
	claims := make([]claim, len(live))
	for i, f := range live {
		c := claim{role: f.Role}
		if f.Role != backend.RoleInbox {
			if r, ok := opts.override(f.Name); ok && r != backend.RoleInbox {
				c = claim{role: r, override: true}
			}
		}
		if f.NoSelect && c.role != backend.RoleInbox {
			// A folder that holds no messages cannot be Drafts or Trash.
			c.role = backend.RoleNone
		}
		claims[i] = c
	}
	winner := map[backend.Role]int{}
	rank := func(i int) int {
		switch {
		case claims[i].override:
			return 0
		case matches[i] >= 0 && known[matches[i]].Role == claims[i].role:
			return 1
		}
		return 2
	}
	for i, c := range claims {
		if c.role == backend.RoleNone {
			continue
		}
		if w, ok := winner[c.role]; !ok || rank(i) < rank(w) {
			winner[c.role] = i
		}
	}
	for role, i := range winner {
		out[i].Role = role
	}
}

// diff returns the changes that take the device from known to next: an
// Update for a folder whose ParentId, DisplayName or Type changed (a
// rename or move keeps its ServerId), a Delete for each known folder not
// in next, an Add for each new one.
func diff(known, next []Folder) *Changes {
	c := &Changes{}
	old := make(map[string]Folder, len(known))
	for _, f := range known {
		old[f.ServerID] = f
	}
	present := make(map[string]bool, len(next))
	for _, f := range next {
		present[f.ServerID] = true
		k, ok := old[f.ServerID]
		switch {
		case !ok:
			c.Add = append(c.Add, f)
		case k.ParentID != f.ParentID || k.DisplayName != f.DisplayName || k.Type != f.Type:
			c.Update = append(c.Update, f)
		}
	}
	for _, f := range known {
		if !present[f.ServerID] {
			c.Delete = append(c.Delete, f.ServerID)
		}
	}
	return c
}
