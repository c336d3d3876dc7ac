package eas

import (
	"context"
	"strconv"
	"strings"

	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/wbxml"
)

// folderUpdate is the FolderUpdate command (MS-ASCMD 2.2.1.4, the digest
// §3.3): SyncKey, ServerId, ParentId, DisplayName in (a rename, a move or
// both); Status, SyncKey out.
func (s *Server) folderUpdate(eng *hierarchy.Engine) Handler {
	return func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		root := wbxml.FolderHierarchyFolderUpdate
		if body == nil {
			return hierarchyStatus(root, hierarchy.StatusMalformed), nil
		}
		key, st := hierarchySyncKey(body)
		if st != 0 {
			return hierarchyStatus(root, st), nil
		}
		sid, parent, name := body.Child(wbxml.FolderHierarchyServerId), body.Child(wbxml.FolderHierarchyParentId), body.Child(wbxml.FolderHierarchyDisplayName)
		if sid == nil || parent == nil || name == nil {
			return hierarchyStatus(root, hierarchy.StatusMalformed), nil
		}
		sess, err := req.Mailbox(ctx)
		if err != nil {
			return Response{}, err
		}
		r, err := eng.Update(ctx, sess, req.User, req.DeviceID, key, strings.TrimSpace(sid.Value()), strings.TrimSpace(parent.Value()), name.Value())
		if err != nil {
			return Response{}, err
		}
		if r.Status != hierarchy.StatusOK {
			s.logHierarchyFailure(ctx, req, r)
			return hierarchyStatus(root, r.Status), nil
		}
		return Response{Element: wbxml.E(root,
			wbxml.T(wbxml.FolderHierarchyStatus, strconv.Itoa(hierarchy.StatusOK)),
			wbxml.T(wbxml.FolderHierarchySyncKey, strconv.FormatUint(r.SyncKey, 10)))}, nil
	}
}
