package eas

import (
	"context"
	"strings"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/wbxml"
)

// folderUpdate is the FolderUpdate command (MS-ASCMD 2.2.1.4, the digest
// §3.3): SyncKey, ServerId, ParentId, DisplayName in (a rename, a move or
// both); Status, SyncKey out.
func (s *Server) folderUpdate(eng *hierarchy.Engine) Handler {
	need := []wbxml.Tag{wbxml.FolderHierarchyServerId, wbxml.FolderHierarchyParentId, wbxml.FolderHierarchyDisplayName}
	return func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		return s.folderCommand(ctx, req, body, wbxml.FolderHierarchyFolderUpdate, need,
			func(sess backend.Session, key uint64, el []*wbxml.Element) (hierarchy.Result, error) {
				return eng.Update(ctx, sess, req.User, req.DeviceID, key, strings.TrimSpace(el[0].Value()), strings.TrimSpace(el[1].Value()), el[2].Value())
			})
	}
}
