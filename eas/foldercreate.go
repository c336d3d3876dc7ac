package eas

import (
	"context"
	"strconv"
	"strings"

	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/wbxml"
)

// folderCreate is the FolderCreate command (MS-ASCMD 2.2.1.3, the digest
// §3.3): SyncKey, ParentId, DisplayName, Type in; Status, SyncKey, ServerId
// out. Only mail folders can be made (Type 12, or 1); a repeated request
// whose answer was lost gets the same ServerId.
func (s *Server) folderCreate(eng *hierarchy.Engine) Handler {
	return func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		root := wbxml.FolderHierarchyFolderCreate
		if body == nil {
			return hierarchyStatus(root, hierarchy.StatusMalformed), nil
		}
		key, st := hierarchySyncKey(body)
		if st != 0 {
			return hierarchyStatus(root, st), nil
		}
		parent, name, typ := body.Child(wbxml.FolderHierarchyParentId), body.Child(wbxml.FolderHierarchyDisplayName), body.Child(wbxml.FolderHierarchyType)
		if parent == nil || name == nil || typ == nil {
			return hierarchyStatus(root, hierarchy.StatusMalformed), nil
		}
		t, err := strconv.Atoi(strings.TrimSpace(typ.Value()))
		if err != nil {
			return hierarchyStatus(root, hierarchy.StatusMalformed), nil
		}
		sess, err := req.Mailbox(ctx)
		if err != nil {
			return Response{}, err
		}
		r, err := eng.Create(ctx, sess, req.User, req.DeviceID, key, strings.TrimSpace(parent.Value()), name.Value(), t)
		if err != nil {
			return Response{}, err
		}
		if r.Status != hierarchy.StatusOK {
			s.logHierarchyFailure(ctx, req, r)
			return hierarchyStatus(root, r.Status), nil
		}
		return Response{Element: wbxml.E(root,
			wbxml.T(wbxml.FolderHierarchyStatus, strconv.Itoa(hierarchy.StatusOK)),
			wbxml.T(wbxml.FolderHierarchySyncKey, strconv.FormatUint(r.SyncKey, 10)),
			wbxml.T(wbxml.FolderHierarchyServerId, r.ServerID))}, nil
	}
}
