package hierarchy

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/easgate/easgate/backend"
)

// memFolder is one folder of memSession.
type memFolder struct {
	name     string
	uv       uint32
	role     backend.Role
	noSelect bool
}

// memSession is an in-memory backend.Session with only the folder methods.
// Its IDs are "UIDVALIDITY.name" like imapstore's (they change on rename),
// or "mb<UIDVALIDITY>" with stableIDs, like a server with MAILBOXID.
type memSession struct {
	backend.Session // nil: the message methods are never called here

	mu        sync.Mutex
	delim     rune
	stableIDs bool
	nextUV    uint32
	folders   []*memFolder
	failList  error // returned by Folders when set
}

func newMem(names ...string) *memSession {
	m := &memSession{delim: '/', nextUV: 1000}
	m.add("INBOX", backend.RoleInbox)
	for _, n := range names {
		role := backend.RoleNone
		n, r, ok := strings.Cut(n, ":")
		if ok {
			switch r {
			case "drafts":
				role = backend.RoleDrafts
			case "sent":
				role = backend.RoleSent
			case "trash":
				role = backend.RoleTrash
			case "junk":
				role = backend.RoleJunk
			case "noselect":
				m.add(n, backend.RoleNone).noSelect = true
				continue
			}
		}
		m.add(n, role)
	}
	return m
}

func (m *memSession) add(name string, role backend.Role) *memFolder {
	m.nextUV++
	f := &memFolder{name: name, uv: m.nextUV, role: role}
	m.folders = append(m.folders, f)
	return f
}

func (m *memSession) id(f *memFolder) backend.FolderID {
	uv := f.uv
	if f.noSelect {
		uv = 0
	}
	if m.stableIDs {
		return backend.FolderID(fmt.Sprintf("mb%d", f.uv))
	}
	return backend.FolderID(fmt.Sprintf("%d.%s", uv, f.name))
}

func (m *memSession) find(id backend.FolderID) *memFolder {
	for _, f := range m.folders {
		if m.id(f) == id {
			return f
		}
	}
	return nil
}

func (m *memSession) findName(name string) *memFolder {
	for _, f := range m.folders {
		if f.name == name {
			return f
		}
	}
	return nil
}

func (m *memSession) list() []backend.Folder {
	fs := append([]*memFolder(nil), m.folders...)
	sort.Slice(fs, func(i, j int) bool {
		if (fs[i].name == "INBOX") != (fs[j].name == "INBOX") {
			return fs[i].name == "INBOX"
		}
		return fs[i].name < fs[j].name
	})
	out := make([]backend.Folder, 0, len(fs))
	for _, f := range fs {
		bf := backend.Folder{ID: m.id(f), Name: f.name, DisplayName: f.name, Delimiter: m.delim, Role: f.role, NoSelect: f.noSelect}
		if !f.noSelect {
			bf.UIDValidity = f.uv
		}
		if i := strings.LastIndexByte(f.name, byte(m.delim)); i >= 0 {
			bf.DisplayName = f.name[i+1:]
			if p := m.findName(f.name[:i]); p != nil {
				bf.Parent = m.id(p)
			}
		}
		out = append(out, bf)
	}
	return out
}

func (m *memSession) folder(name string) backend.Folder {
	for _, f := range m.list() {
		if f.Name == name {
			return f
		}
	}
	return backend.Folder{}
}

func (m *memSession) Folders(ctx context.Context) ([]backend.Folder, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failList != nil {
		return nil, m.failList
	}
	return m.list(), nil
}

func (m *memSession) childName(parent backend.FolderID, name string) (string, error) {
	if name == "" || strings.ContainsRune(name, m.delim) {
		return "", fmt.Errorf("%w: %q", backend.ErrInvalidName, name)
	}
	if parent == "" {
		return name, nil
	}
	p := m.find(parent)
	if p == nil {
		return "", backend.ErrParentNotFound
	}
	return p.name + string(m.delim) + name, nil
}

func (m *memSession) CreateFolder(ctx context.Context, parent backend.FolderID, name string) (backend.Folder, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	full, err := m.childName(parent, name)
	if err != nil {
		return backend.Folder{}, err
	}
	if m.findName(full) != nil {
		return backend.Folder{}, fmt.Errorf("%w: %s", backend.ErrFolderExists, full)
	}
	m.add(full, backend.RoleNone)
	return m.folder(full), nil
}

func (m *memSession) RenameFolder(ctx context.Context, id, newParent backend.FolderID, newName string) (backend.Folder, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.find(id)
	if f == nil {
		return backend.Folder{}, backend.ErrFolderNotFound
	}
	if f.role != backend.RoleNone {
		return backend.Folder{}, backend.ErrSpecialFolder
	}
	target, err := m.childName(newParent, newName)
	if err != nil {
		return backend.Folder{}, err
	}
	if target != f.name && m.findName(target) != nil {
		return backend.Folder{}, backend.ErrFolderExists
	}
	m.renameAll(f.name, target)
	return m.folder(target), nil
}

// renameAll renames a folder and its children, as IMAP RENAME does.
func (m *memSession) renameAll(from, to string) {
	prefix := from + string(m.delim)
	for _, g := range m.folders {
		if g.name == from {
			g.name = to
		} else if rest, ok := strings.CutPrefix(g.name, prefix); ok {
			g.name = to + string(m.delim) + rest
		}
	}
}

func (m *memSession) DeleteFolder(ctx context.Context, id backend.FolderID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.find(id)
	if f == nil {
		return backend.ErrFolderNotFound
	}
	if f.role != backend.RoleNone {
		return backend.ErrSpecialFolder
	}
	m.remove(f.name)
	return nil
}

// remove deletes a folder and its children.
func (m *memSession) remove(name string) {
	prefix := name + string(m.delim)
	var keep []*memFolder
	for _, g := range m.folders {
		if g.name != name && !strings.HasPrefix(g.name, prefix) {
			keep = append(keep, g)
		}
	}
	m.folders = keep
}
