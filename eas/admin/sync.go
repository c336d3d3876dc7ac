package admin

import (
	"errors"
	"net/http"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/eas/mailsync"
)

// CollectionSync is one mail collection in the sync report of a device:
// GET /api/v1/devices/{user}/{device}/sync. Items that could not be
// converted (Failed) are listed here, as well as logged and counted
// (easgate_sync_items_failed_total), so that an operator can find the
// message that a phone never gets.
type CollectionSync struct {
	// Collection is the CollectionId (the folder's ServerId).
	Collection string `json:"collection"`
	mailsync.Report
}

func (a *API) syncReport(w http.ResponseWriter, r *http.Request) {
	d, colls, ok := a.deviceCollections(w, r)
	if !ok {
		return
	}
	out := []CollectionSync{}
	for _, c := range colls {
		if c == devices.HierarchyCollection {
			continue
		}
		st, err := a.store.LatestSyncState(r.Context(), d.User, d.ID, c)
		if errors.Is(err, devices.ErrNotFound) {
			continue // deleted since the listing
		}
		if err != nil {
			a.serverError(w, r, "read sync state", err)
			return
		}
		rep, err := mailsync.ReportState(st.Data)
		if err != nil {
			a.serverError(w, r, "read sync state", err)
			return
		}
		out = append(out, CollectionSync{Collection: c, Report: rep})
	}
	writeJSON(w, http.StatusOK, out)
}
