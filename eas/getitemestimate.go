package eas

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/eas/mailsync"
	"github.com/easgate/easgate/wbxml"
)

// getItemEstimate is the GetItemEstimate command (MS-ASCMD 2.2.1.9, the
// digest §3.5): for each collection, in request order, the exact number
// of changes the next Sync with the given key and FilterType would bring.
// Status 2 for a collection the phone's hierarchy does not know, 3 before
// the collection was primed (key 0 or none), 4 for an unknown key.
//
// The 14.0+ request carries airsync:SyncKey and airsync:Options >
// FilterType; the 12.x one carries Class, SyncKey and FilterType directly
// in the Collection; both are read.
func (m *mailSync) getItemEstimate(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
	if body == nil {
		return Response{}, errBadRequest(StatusInvalidContent, fmt.Errorf("GetItemEstimate without a body"))
	}
	colls := body.Child(wbxml.GetItemEstimateCollections)
	if colls == nil {
		return Response{Element: wbxml.E(wbxml.GetItemEstimateGetItemEstimate, wbxml.T(wbxml.GetItemEstimateStatus, "2"))}, nil
	}
	h, err := hierarchy.Load(ctx, m.s.cfg.Devices, req.User, req.DeviceID)
	if err != nil && !errors.Is(err, devices.ErrNotFound) {
		return Response{}, err
	}
	out := wbxml.E(wbxml.GetItemEstimateGetItemEstimate)
	for _, c := range colls.ChildrenOf(wbxml.GetItemEstimateCollection) {
		id := c.ChildText(wbxml.GetItemEstimateCollectionId)
		key := c.ChildText(wbxml.AirSyncSyncKey)
		filter := 0
		if n, ok := intText(c, wbxml.AirSyncFilterType); ok {
			filter = n
		}
		if o := emailOptions(c); o != nil {
			if n, ok := intText(o, wbxml.AirSyncFilterType); ok {
				filter = n
			}
		}
		if filter < 0 || filter > maxMailFilter {
			filter = 0
		}
		status, count := mailsync.EstimateInvalidCollection, 0
		var folder hierarchy.Folder
		ok := false
		if h != nil {
			folder, ok = h.Folder(id)
		}
		if ok && !folder.NoSelect {
			sess, err := req.Mailbox(ctx)
			if err != nil {
				return Response{}, err
			}
			count, status, err = m.eng.Estimate(ctx, &mailsync.Request{
				User: req.User, Device: req.DeviceID, Collection: id, Folder: folder.ID, Session: sess,
				SyncKey: key, Options: mailsync.Options{FilterType: filter, GetChanges: true},
			})
			if err != nil {
				return Response{}, err
			}
		}
		r := wbxml.E(wbxml.GetItemEstimateResponse, wbxml.T(wbxml.GetItemEstimateStatus, strconv.Itoa(status)))
		ce := wbxml.E(wbxml.GetItemEstimateCollection, wbxml.T(wbxml.GetItemEstimateCollectionId, id))
		if status == mailsync.EstimateSuccess {
			ce.Add(wbxml.T(wbxml.GetItemEstimateEstimate, strconv.Itoa(count)))
		}
		out.Add(r.Add(ce))
	}
	return Response{Element: out}, nil
}
