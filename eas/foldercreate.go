package eas

import (
	"context"
	"strconv"
	"strings"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/wbxml"
)

// folderCreate is the FolderCreate command (MS-ASCMD 2.2.1.3, the digest
// §3.3): SyncKey, ParentId, DisplayName, Type in; Status, SyncKey, ServerId
// out. Only mail folders can be made (Type 12, or 1); a repeated request
// whose answer was lost gets the same ServerId.
func (s *Server) folderCreate(eng *hierarchy.Engine) Handler {
	need := []wbxml.Tag{wbxml.FolderHierarchyParentId, wbxml.FolderHierarchyDisplayName, wbxml.FolderHierarchyType}
	return func(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
		return s.folderCommand(ctx, req, body, wbxml.FolderHierarchyFolderCreate, need,
			func(sess backend.Session, key uint64, el []*wbxml.Element) (hierarchy.Result, error) {
				t, err := strconv.Atoi(strings.TrimSpace(el[2].Value()))
				if err != nil {
					return hierarchy.Result{Status: hierarchy.StatusMalformed}, nil
				}
				return eng.Create(ctx, sess, req.User, req.DeviceID, key, strings.TrimSpace(el[0].Value()), el[1].Value(), t)
			})
	}
}
