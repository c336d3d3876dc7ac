package mailsync

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"

	"github.com/easgate/easgate/backend"
)

// maxDraftIDs is how many recent ClientIds of drafts the state keeps, so
// that an Add repeated under any key finds the draft it made.
const maxDraftIDs = 32

// draftID maps the ClientId of a draft the phone added to its UID.
type draftID struct {
	ClientID string      `json:"c"`
	UID      backend.UID `json:"u"`
}

// addDraft runs a client Add: a 16.x draft saved in the Drafts folder
// (MS-ASCMD 2.2.3.7.2, MS-ASEMAIL 3.1.5.3; digest §4.3). The message is
// composed from the ApplicationData and appended with \Draft and \Seen;
// the phone gets its ServerId and is not sent the draft back. An Add
// repeated with the same ClientId answers with the draft made the first
// time. Adds anywhere else, before 16.0, or asking to send (email2:Send
// needs SendMail) get Status 6.
func (e *Engine) addDraft(ctx context.Context, req *Request, cur *state, c Command) (Response, func(*state), error) {
	r := Response{Kind: CmdAdd, ClientID: c.ClientID, Status: StatusConversionError}
	switch {
	case c.ClientID == "":
		r.Status = StatusProtocolError
		return r, nil, nil
	case c.Draft == nil:
		e.log().Info("sync: draft Add refused: not convertible", "user", req.User, "device", req.Device, "err", c.DraftErr)
		return r, nil, nil
	case !req.Options.Item.Drafts || req.Options.Item.ProtocolVersion() < 160:
		e.log().Info("sync: email Add refused: only 16.x drafts in Drafts", "user", req.User, "device", req.Device,
			"collection", req.Collection, "version", req.Options.Item.Version)
		return r, nil, nil
	case c.Draft.Send:
		e.log().Info("sync: draft Add with Send refused: sending is not supported", "user", req.User, "device", req.Device)
		return r, nil, nil
	}
	for _, d := range cur.Drafts {
		if d.ClientID == c.ClientID {
			r.Status = StatusSuccess
			r.ServerID = ServerID(req.Collection, d.UID)
			return r, nil, nil
		}
	}
	from := req.Options.From
	if from == "" {
		from = req.User
	}
	raw, err := c.Draft.Compose(from, e.now(), newMessageID())
	if err != nil {
		e.log().Warn("sync: draft not composed", "user", req.User, "device", req.Device, "err", err)
		return r, nil, nil
	}
	uid, err := req.Session.Append(ctx, req.Folder, backend.AppendMessage{
		Flags: []string{backend.FlagDraft, backend.FlagSeen},
		Date:  e.now(),
		Size:  int64(len(raw)),
		Body:  bytes.NewReader(raw),
	})
	if err != nil {
		if errors.Is(err, backend.ErrFolderNotFound) {
			r.Status = StatusObjectNotFound
			return r, nil, nil
		}
		return r, nil, err
	}
	if uid == 0 {
		// Stored, but the server did not say where (no UIDPLUS): the
		// next Sync sends it as a new item.
		r.Status = StatusServerError
		return r, nil, nil
	}
	r.Status = StatusSuccess
	r.ServerID = ServerID(req.Collection, uid)
	return r, func(st *state) {
		st.Own.AddUID(uid)
		st.Drafts = append(st.Drafts, draftID{ClientID: c.ClientID, UID: uid})
		if n := len(st.Drafts); n > maxDraftIDs {
			st.Drafts = st.Drafts[n-maxDraftIDs:]
		}
	}, nil
}

// newMessageID returns a fresh Message-ID (without angle brackets).
func newMessageID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "@easgate"
}
