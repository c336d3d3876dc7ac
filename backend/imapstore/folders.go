package imapstore

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/easgate/easgate/backend"
)

// Folders implements backend.Session with one LIST RETURN (SPECIAL-USE
// STATUS (MESSAGES UIDNEXT UIDVALIDITY HIGHESTMODSEQ)) where the server
// has LIST-STATUS, else LIST plus a STATUS per folder.
func (s *session) Folders(ctx context.Context) ([]backend.Folder, error) {
	var folders []backend.Folder
	err := s.do(ctx, func(c *conn) error {
		var err error
		folders, err = listFolders(c)
		return err
	})
	return folders, err
}

// statusItems are what Folders and Changes ask STATUS for.
func statusItems(c *conn) *imap.StatusOptions {
	return &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, HighestModSeq: c.condStore()}
}

func listFolders(c *conn) ([]backend.Folder, error) {
	opts := &imap.ListOptions{ReturnSpecialUse: c.has(imap.CapSpecialUse)}
	listStatus := c.has(imap.CapListStatus) || c.has(imap.CapIMAP4rev2)
	if listStatus {
		opts.ReturnStatus = statusItems(c)
	}
	list, err := c.client.List("", "*", opts).Collect()
	if err != nil {
		return nil, fmt.Errorf("LIST: %w", err)
	}
	if !listStatus {
		for _, l := range list {
			if hasAttr(l.Attrs, imap.MailboxAttrNoSelect) || hasAttr(l.Attrs, imap.MailboxAttrNonExistent) {
				continue
			}
			st, err := c.client.Status(l.Mailbox, statusItems(c)).Wait()
			if err != nil {
				return nil, fmt.Errorf("STATUS %s: %w", l.Mailbox, err)
			}
			l.Status = st
		}
	}
	return toFolders(list), nil
}

// toFolders turns LIST data into folders: INBOX first, then by name (so
// parents come before their children), with IDs, parents and roles.
func toFolders(list []*imap.ListData) []backend.Folder {
	folders := make([]backend.Folder, 0, len(list))
	for _, l := range list {
		f := backend.Folder{
			Name:        l.Mailbox,
			DisplayName: l.Mailbox,
			Delimiter:   l.Delim,
			NoSelect:    hasAttr(l.Attrs, imap.MailboxAttrNoSelect) || hasAttr(l.Attrs, imap.MailboxAttrNonExistent),
		}
		if strings.EqualFold(l.Mailbox, "INBOX") {
			f.Name, f.DisplayName = "INBOX", "INBOX"
			f.Role = backend.RoleInbox
		}
		if l.Delim != 0 {
			if i := strings.LastIndex(l.Mailbox, string(l.Delim)); i >= 0 {
				f.DisplayName = l.Mailbox[i+1:]
			}
		}
		switch {
		case hasAttr(l.Attrs, imap.MailboxAttrDrafts):
			f.Role = backend.RoleDrafts
		case hasAttr(l.Attrs, imap.MailboxAttrSent):
			f.Role = backend.RoleSent
		case hasAttr(l.Attrs, imap.MailboxAttrTrash):
			f.Role = backend.RoleTrash
		case hasAttr(l.Attrs, imap.MailboxAttrJunk):
			f.Role = backend.RoleJunk
		}
		if st := l.Status; st != nil {
			f.UIDValidity = st.UIDValidity
			f.UIDNext = backend.UID(st.UIDNext)
			if st.NumMessages != nil {
				f.Messages = *st.NumMessages
			}
			f.HighestModSeq = st.HighestModSeq
		}
		f.ID = folderID(f.Name, f.UIDValidity)
		folders = append(folders, f)
	}
	sort.Slice(folders, func(i, j int) bool {
		a, b := folders[i], folders[j]
		if (a.Role == backend.RoleInbox) != (b.Role == backend.RoleInbox) {
			return a.Role == backend.RoleInbox
		}
		return a.Name < b.Name
	})
	byName := make(map[string]backend.FolderID, len(folders))
	for _, f := range folders {
		byName[f.Name] = f.ID
	}
	for i, f := range folders {
		if f.Delimiter == 0 {
			continue
		}
		if j := strings.LastIndex(f.Name, string(f.Delimiter)); j > 0 {
			parent := f.Name[:j]
			if strings.EqualFold(parent, "INBOX") {
				parent = "INBOX"
			}
			folders[i].Parent = byName[parent]
		}
	}
	guessRoles(folders)
	return folders
}

// wellKnown are the names that give a top-level folder its role on a
// server without SPECIAL-USE (compared without case).
var wellKnown = []struct {
	role  backend.Role
	names []string
}{
	{backend.RoleDrafts, []string{"Drafts"}},
	{backend.RoleSent, []string{"Sent", "Sent Items", "Sent Messages"}},
	{backend.RoleTrash, []string{"Trash", "Deleted Items", "Deleted Messages"}},
	{backend.RoleJunk, []string{"Junk", "Spam", "Junk E-mail"}},
}

// guessRoles gives each role no folder has from SPECIAL-USE to the first
// top-level folder with a well-known name for it.
func guessRoles(folders []backend.Folder) {
	have := map[backend.Role]bool{}
	for _, f := range folders {
		have[f.Role] = true
	}
	for _, wk := range wellKnown {
		if have[wk.role] {
			continue
		}
	names:
		for _, name := range wk.names {
			for i, f := range folders {
				if f.Parent == "" && f.Role == backend.RoleNone && !f.NoSelect && strings.EqualFold(f.Name, name) {
					folders[i].Role = wk.role
					break names
				}
			}
		}
	}
}

func hasAttr(attrs []imap.MailboxAttr, want imap.MailboxAttr) bool {
	for _, a := range attrs {
		if strings.EqualFold(string(a), string(want)) {
			return true
		}
	}
	return false
}

func findFolder(folders []backend.Folder, id backend.FolderID) (backend.Folder, bool) {
	for _, f := range folders {
		if f.ID == id {
			return f, true
		}
	}
	return backend.Folder{}, false
}

func findFolderName(folders []backend.Folder, name string) (backend.Folder, bool) {
	for _, f := range folders {
		if f.Name == name || (f.Role == backend.RoleInbox && strings.EqualFold(name, "INBOX")) {
			return f, true
		}
	}
	return backend.Folder{}, false
}

// delimiter returns the hierarchy delimiter of the user's namespace, as
// the folders report it (0 for a flat hierarchy).
func delimiter(folders []backend.Folder) rune {
	for _, f := range folders {
		if f.Delimiter != 0 {
			return f.Delimiter
		}
	}
	return 0
}

// childName joins a parent name and a new component, checking the
// component.
func childName(folders []backend.Folder, parent backend.FolderID, name string) (string, error) {
	delim := delimiter(folders)
	if name == "" || strings.ContainsAny(name, "\r\n\x00*%") || (delim != 0 && strings.ContainsRune(name, delim)) {
		return "", fmt.Errorf("%w: %q", backend.ErrInvalidName, name)
	}
	if parent == "" {
		if strings.EqualFold(name, "INBOX") {
			return "", fmt.Errorf("%w: INBOX", backend.ErrFolderExists)
		}
		return name, nil
	}
	p, ok := findFolder(folders, parent)
	if !ok {
		return "", fmt.Errorf("%w: %s", backend.ErrParentNotFound, parent)
	}
	if delim == 0 {
		return "", fmt.Errorf("%w: the server has a flat hierarchy", backend.ErrParentNotFound)
	}
	return p.Name + string(delim) + name, nil
}

// CreateFolder implements backend.Session: CREATE and SUBSCRIBE.
func (s *session) CreateFolder(ctx context.Context, parent backend.FolderID, name string) (backend.Folder, error) {
	var created backend.Folder
	err := s.do(ctx, func(c *conn) error {
		c.selected = selection{} // the selected folder may be renamed or deleted: open it afresh after
		folders, err := listFolders(c)
		if err != nil {
			return err
		}
		full, err := childName(folders, parent, name)
		if err != nil {
			return err
		}
		if _, ok := findFolderName(folders, full); ok {
			return fmt.Errorf("%w: %s", backend.ErrFolderExists, full)
		}
		c.mutated = true
		if err := c.client.Create(full, nil).Wait(); err != nil {
			if hasCode(err, imap.ResponseCodeAlreadyExists) {
				return fmt.Errorf("%w: %s: %w", backend.ErrFolderExists, full, err)
			}
			return fmt.Errorf("CREATE %s: %w", full, err)
		}
		if err := c.client.Subscribe(full).Wait(); err != nil && !isNo(err) {
			return err
		}
		created, err = relist(c, full)
		return err
	})
	return created, err
}

// relist lists the folders again and returns the one called name.
func relist(c *conn, name string) (backend.Folder, error) {
	folders, err := listFolders(c)
	if err != nil {
		return backend.Folder{}, err
	}
	f, ok := findFolderName(folders, name)
	if !ok {
		return backend.Folder{}, fmt.Errorf("%w: %s vanished right after being made", backend.ErrFolderNotFound, name)
	}
	return f, nil
}

// RenameFolder implements backend.Session with RENAME, moving the
// subscription along.
func (s *session) RenameFolder(ctx context.Context, id, newParent backend.FolderID, newName string) (backend.Folder, error) {
	var renamed backend.Folder
	err := s.do(ctx, func(c *conn) error {
		c.selected = selection{} // the selected folder may be renamed or deleted: open it afresh after
		folders, err := listFolders(c)
		if err != nil {
			return err
		}
		f, ok := findFolder(folders, id)
		if !ok {
			return fmt.Errorf("%w: %s", backend.ErrFolderNotFound, id)
		}
		if f.Role != backend.RoleNone {
			return fmt.Errorf("%w: %s is the %v folder", backend.ErrSpecialFolder, f.Name, f.Role)
		}
		target, err := childName(folders, newParent, newName)
		if err != nil {
			return err
		}
		if target == f.Name {
			renamed = f
			return nil
		}
		if f.Delimiter != 0 && strings.HasPrefix(target, f.Name+string(f.Delimiter)) {
			return fmt.Errorf("%w: %s cannot move below itself", backend.ErrParentNotFound, f.Name)
		}
		if _, ok := findFolderName(folders, target); ok {
			return fmt.Errorf("%w: %s", backend.ErrFolderExists, target)
		}
		if err := unselect(c); err != nil {
			return err
		}
		c.mutated = true
		if err := c.client.Rename(f.Name, target, nil).Wait(); err != nil {
			switch {
			case hasCode(err, imap.ResponseCodeAlreadyExists):
				return fmt.Errorf("%w: %s: %w", backend.ErrFolderExists, target, err)
			case hasCode(err, imap.ResponseCodeNonExistent):
				return fmt.Errorf("%w: %s: %w", backend.ErrFolderNotFound, f.Name, err)
			}
			return fmt.Errorf("RENAME %s %s: %w", f.Name, target, err)
		}
		if err := c.client.Subscribe(target).Wait(); err != nil && !isNo(err) {
			return err
		}
		if err := c.client.Unsubscribe(f.Name).Wait(); err != nil && !isNo(err) {
			return err
		}
		renamed, err = relist(c, target)
		return err
	})
	return renamed, err
}

// DeleteFolder implements backend.Session: its subfolders first (EAS
// deletes a folder with everything below it), deepest first.
func (s *session) DeleteFolder(ctx context.Context, id backend.FolderID) error {
	return s.do(ctx, func(c *conn) error {
		c.selected = selection{} // the selected folder may be renamed or deleted: open it afresh after
		folders, err := listFolders(c)
		if err != nil {
			return err
		}
		f, ok := findFolder(folders, id)
		if !ok {
			return fmt.Errorf("%w: %s", backend.ErrFolderNotFound, id)
		}
		if f.Role != backend.RoleNone {
			return fmt.Errorf("%w: %s is the %v folder", backend.ErrSpecialFolder, f.Name, f.Role)
		}
		victims := []string{f.Name}
		if f.Delimiter != 0 {
			for _, g := range folders {
				if strings.HasPrefix(g.Name, f.Name+string(f.Delimiter)) {
					if g.Role != backend.RoleNone {
						return fmt.Errorf("%w: %s holds the %v folder", backend.ErrSpecialFolder, f.Name, g.Role)
					}
					victims = append(victims, g.Name)
				}
			}
		}
		// Dovecot drops a connection whose selected mailbox is deleted.
		if err := unselect(c); err != nil {
			return err
		}
		// Longer names are deeper; delete them first.
		sort.Slice(victims, func(i, j int) bool { return len(victims[i]) > len(victims[j]) })
		c.mutated = true
		for _, name := range victims {
			if err := c.client.Delete(name).Wait(); err != nil {
				if hasCode(err, imap.ResponseCodeNonExistent) && name == f.Name {
					return fmt.Errorf("%w: %s: %w", backend.ErrFolderNotFound, name, err)
				}
				if !hasCode(err, imap.ResponseCodeNonExistent) {
					return fmt.Errorf("DELETE %s: %w", name, err)
				}
			}
			if err := c.client.Unsubscribe(name).Wait(); err != nil && !isNo(err) {
				return err
			}
		}
		return nil
	})
}

// unselect leaves the selected mailbox, if any (UNSELECT, RFC 3691).
func unselect(c *conn) error {
	if c.client.Mailbox() == nil {
		return nil
	}
	c.selected = selection{}
	if err := c.client.Unselect().Wait(); err != nil {
		return fmt.Errorf("UNSELECT: %w", err)
	}
	return nil
}

// EmptyFolder implements backend.Session: UID STORE 1:* +FLAGS.SILENT
// (\Deleted) and CLOSE, then DELETE of the subfolders, deepest first.
func (s *session) EmptyFolder(ctx context.Context, id backend.FolderID, subfolders bool) error {
	return s.do(ctx, func(c *conn) error {
		name, sel, err := selectFolder(c, id)
		if err != nil {
			return err
		}
		var victims []string
		if subfolders {
			folders, err := listFolders(c)
			if err != nil {
				return err
			}
			f, ok := findFolderName(folders, name)
			if !ok {
				return fmt.Errorf("%w: %s", backend.ErrFolderNotFound, name)
			}
			if f.Delimiter != 0 {
				for _, g := range folders {
					if strings.HasPrefix(g.Name, f.Name+string(f.Delimiter)) {
						if g.Role != backend.RoleNone {
							return fmt.Errorf("%w: %s holds the %v folder", backend.ErrSpecialFolder, f.Name, g.Role)
						}
						victims = append(victims, g.Name)
					}
				}
			}
		}
		if sel.NumMessages > 0 {
			c.mutated = true
			all := imap.UIDSet{{Start: 1, Stop: 0}}
			if err := c.client.Store(all, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				return fmt.Errorf("UID STORE 1:* \\Deleted: %w", err)
			}
		}
		// CLOSE expunges silently and leaves the mailbox.
		c.selected = selection{}
		if err := c.client.UnselectAndExpunge().Wait(); err != nil {
			return fmt.Errorf("CLOSE: %w", err)
		}
		sort.Slice(victims, func(i, j int) bool { return len(victims[i]) > len(victims[j]) })
		for _, v := range victims {
			c.mutated = true
			if err := c.client.Delete(v).Wait(); err != nil && !hasCode(err, imap.ResponseCodeNonExistent) {
				return fmt.Errorf("DELETE %s: %w", v, err)
			}
			if err := c.client.Unsubscribe(v).Wait(); err != nil && !isNo(err) {
				return err
			}
		}
		return nil
	})
}
