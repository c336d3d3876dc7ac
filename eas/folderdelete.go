package eas

import (
	"context"
	"strconv"
	"strings"

	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/wbxml"
)

// folderDelete is the FolderDelete command (MS-ASCMD 2.2.1.2, the digest
// §3.3): SyncKey, ServerId in; Status, SyncKey out. The folder's subfolders
// go with it, and so do the Sync states of all of them.
func (s *Server) folderDelete(eng *hierarchy.Engine) Handler {
	return func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		root := wbxml.FolderHierarchyFolderDelete
		if body == nil {
			return hierarchyStatus(root, hierarchy.StatusMalformed), nil
		}
		key, st := hierarchySyncKey(body)
		if st != 0 {
			return hierarchyStatus(root, st), nil
		}
		sid := body.Child(wbxml.FolderHierarchyServerId)
		if sid == nil {
			return hierarchyStatus(root, hierarchy.StatusMalformed), nil
		}
		sess, err := req.Mailbox(ctx)
		if err != nil {
			return Response{}, err
		}
		r, err := eng.Delete(ctx, sess, req.User, req.DeviceID, key, strings.TrimSpace(sid.Value()))
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
