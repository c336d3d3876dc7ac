package eas

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/wbxml"
)

// registerFolderCommands registers FolderSync, FolderCreate, FolderUpdate
// and FolderDelete when the server has a mail store and a device store (the
// hierarchy state lives there). The rules are eas/hierarchy's; the handlers
// read the request, open the mailbox and write the answer.
func (s *Server) registerFolderCommands() {
	if s.cfg.Mail == nil || s.cfg.Devices == nil {
		return
	}
	eng := s.hierarchyEngine()
	s.mustHandle("FolderSync", s.folderSync(eng))
	s.mustHandle("FolderCreate", s.folderCreate(eng))
	s.mustHandle("FolderUpdate", s.folderUpdate(eng))
	s.mustHandle("FolderDelete", s.folderDelete(eng))
}

// hierarchyEngine returns the hierarchy engine on the server's device
// store with its role overrides. Commands that translate CollectionIds or
// need to know whether the folders changed (Sync Status 12, Ping Status 7:
// Engine.Pending) use it, or hierarchy.Load, so that they see the folders
// as FolderSync presents them. It is cheap: the engine holds no state of
// its own.
func (s *Server) hierarchyEngine() *hierarchy.Engine {
	return &hierarchy.Engine{Store: s.cfg.Devices, Options: hierarchy.Options{RoleOverrides: s.cfg.RoleOverrides}}
}

// mailFolders returns the lookup of the device's folders by CollectionId
// that hold mail (not NoSelect), as its last FolderSync presented them;
// before any FolderSync it finds nothing.
func (s *Server) mailFolders(ctx context.Context, req *Request) (func(id string) (hierarchy.Folder, bool), error) {
	h, err := hierarchy.Load(ctx, s.cfg.Devices, req.User, req.DeviceID)
	if err != nil && !errors.Is(err, devices.ErrNotFound) {
		return nil, err
	}
	return func(id string) (hierarchy.Folder, bool) {
		if h == nil {
			return hierarchy.Folder{}, false
		}
		f, ok := h.Folder(id)
		return f, ok && !f.NoSelect
	}, nil
}

// hierarchySyncKey reads the SyncKey of a hierarchy command. It returns
// Status 10 (malformed) when the element is missing and 9 (invalid key)
// when it is not a number (MS-ASCMD 2.2.3.166.2: the server issues
// numbers, so anything else is not one of its keys).
func hierarchySyncKey(body *wbxml.Element) (uint64, int) {
	el := body.Child(wbxml.FolderHierarchySyncKey)
	if el == nil {
		return 0, hierarchy.StatusMalformed
	}
	key, err := strconv.ParseUint(strings.TrimSpace(el.Value()), 10, 64)
	if err != nil {
		return 0, hierarchy.StatusInvalidKey
	}
	return key, 0
}

// hierarchyStatus is a hierarchy command's answer holding only a status.
// These commands answer their own statuses in the body in every version
// (MS-ASCMD 2.2.3.177.3–6), so this is a Response, not a StatusError.
func hierarchyStatus(root wbxml.Tag, status int) Response {
	return Response{Element: wbxml.E(root, wbxml.T(wbxml.FolderHierarchyStatus, strconv.Itoa(status)))}
}

// logHierarchyFailure logs why a hierarchy command answered a status other
// than success; server errors as warnings.
func (s *Server) logHierarchyFailure(ctx context.Context, req *Request, r hierarchy.Result) {
	level := slog.LevelInfo
	if r.Status == hierarchy.StatusServerError {
		level = slog.LevelWarn
	}
	cause := ""
	if r.Cause != nil {
		cause = r.Cause.Error()
	}
	s.log.LogAttrs(ctx, level, "folder command refused", slog.String("cmd", req.Command),
		slog.String("user", req.User), slog.String("device", req.DeviceID),
		slog.Int("status", r.Status), slog.String("cause", cause))
}

// folderElement writes one folder of a FolderSync Add or Update
// (MS-ASCMD 2.2.3.7.2, 2.2.3.187.2).
func folderElement(tag wbxml.Tag, f hierarchy.Folder) *wbxml.Element {
	return wbxml.E(tag,
		wbxml.T(wbxml.FolderHierarchyServerId, f.ServerID),
		wbxml.T(wbxml.FolderHierarchyParentId, f.ParentID),
		wbxml.T(wbxml.FolderHierarchyDisplayName, f.DisplayName),
		wbxml.T(wbxml.FolderHierarchyType, strconv.Itoa(f.Type)))
}

// folderCommand runs what FolderCreate, FolderUpdate and FolderDelete
// share (MS-ASCMD 2.2.1.2-4): the body must hold a SyncKey and every
// element in need (else Status 10 or 9, per the hierarchy statuses); op
// gets the key and those elements, in need's order, with the user's
// mailbox; a refusal is logged and answered with its status alone; success
// is Status, SyncKey and, when op made one, the new folder's ServerId.
func (s *Server) folderCommand(ctx context.Context, req *Request, body *wbxml.Element, root wbxml.Tag, need []wbxml.Tag,
	op func(sess backend.Session, key uint64, el []*wbxml.Element) (hierarchy.Result, error)) (Response, error) {
	if body == nil {
		return hierarchyStatus(root, hierarchy.StatusMalformed), nil
	}
	key, st := hierarchySyncKey(body)
	if st != 0 {
		return hierarchyStatus(root, st), nil
	}
	el := make([]*wbxml.Element, len(need))
	for i, tag := range need {
		if el[i] = body.Child(tag); el[i] == nil {
			return hierarchyStatus(root, hierarchy.StatusMalformed), nil
		}
	}
	sess, err := req.Mailbox(ctx)
	if err != nil {
		return Response{}, err
	}
	r, err := op(sess, key, el)
	if err != nil {
		return Response{}, err
	}
	if r.Status != hierarchy.StatusOK {
		s.logHierarchyFailure(ctx, req, r)
		return hierarchyStatus(root, r.Status), nil
	}
	resp := wbxml.E(root,
		wbxml.T(wbxml.FolderHierarchyStatus, strconv.Itoa(hierarchy.StatusOK)),
		wbxml.T(wbxml.FolderHierarchySyncKey, strconv.FormatUint(r.SyncKey, 10)))
	if r.ServerID != "" {
		resp.Add(wbxml.T(wbxml.FolderHierarchyServerId, r.ServerID))
	}
	return Response{Element: resp}, nil
}
