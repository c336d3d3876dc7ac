package eas

import (
	"context"
	"strings"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/wbxml"
)

// folderDelete is the FolderDelete command (MS-ASCMD 2.2.1.2, the digest
// §3.3): SyncKey, ServerId in; Status, SyncKey out. The folder's subfolders
// go with it, and so do the Sync states of all of them.
func (s *Server) folderDelete(eng *hierarchy.Engine) Handler {
	need := []wbxml.Tag{wbxml.FolderHierarchyServerId}
	return func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		return s.folderCommand(ctx, req, body, wbxml.FolderHierarchyFolderDelete, need,
			func(sess backend.Session, key uint64, el []*wbxml.Element) (hierarchy.Result, error) {
				return eng.Delete(ctx, sess, req.User, req.DeviceID, key, strings.TrimSpace(el[0].Value()))
			})
	}
}
