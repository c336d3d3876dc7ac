package eas

import (
	"context"
	"strconv"

	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/wbxml"
)

// folderSync is the FolderSync command (MS-ASCMD 2.2.1.5, the digest
// §3.2): FolderSync > SyncKey in, and
//
//	FolderSync > Status, SyncKey, Changes > Count, Update*, Delete*, Add*
//
// out, in the schema's order. SyncKey 0 from a device that already synced
// keeps its ServerIds and its Sync states (eas/hierarchy).
func (s *Server) folderSync(eng *hierarchy.Engine) Handler {
	return func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		root := wbxml.FolderHierarchyFolderSync
		if body == nil {
			return hierarchyStatus(root, hierarchy.StatusMalformed), nil
		}
		key, st := hierarchySyncKey(body)
		if st != 0 {
			return hierarchyStatus(root, st), nil
		}
		sess, err := req.Mailbox(ctx)
		if err != nil {
			return Response{}, err
		}
		r, err := eng.FolderSync(ctx, sess, req.User, req.DeviceID, key)
		if err != nil {
			return Response{}, err
		}
		if r.Status != hierarchy.StatusOK {
			s.logHierarchyFailure(ctx, req, r)
			return hierarchyStatus(root, r.Status), nil
		}
		changes := wbxml.E(wbxml.FolderHierarchyChanges, wbxml.T(wbxml.FolderHierarchyCount, strconv.Itoa(r.Changes.Count())))
		for _, f := range r.Changes.Update {
			changes.Add(folderElement(wbxml.FolderHierarchyUpdate, f))
		}
		for _, sid := range r.Changes.Delete {
			changes.Add(wbxml.E(wbxml.FolderHierarchyDelete, wbxml.T(wbxml.FolderHierarchyServerId, sid)))
		}
		for _, f := range r.Changes.Add {
			changes.Add(folderElement(wbxml.FolderHierarchyAdd, f))
		}
		return Response{Element: wbxml.E(root,
			wbxml.T(wbxml.FolderHierarchyStatus, strconv.Itoa(hierarchy.StatusOK)),
			wbxml.T(wbxml.FolderHierarchySyncKey, strconv.FormatUint(r.SyncKey, 10)),
			changes)}, nil
	}
}
