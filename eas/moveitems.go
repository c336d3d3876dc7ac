package eas

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/eas/mailsync"
	"github.com/easgate/easgate/eas/push"
	"github.com/easgate/easgate/wbxml"
)

// MoveItems statuses (MS-ASCMD 2.2.3.177.9).
const (
	moveInvalidSource = 1
	moveInvalidDest   = 2
	moveSuccess       = 3
	moveSameFolder    = 4
	moveFailed        = 5
)

// moveItems is the MoveItems command (MS-ASCMD 2.2.1.12, the digest
// §3.6): each Move in request order is one UID MOVE, answered with Status
// 3 and DstMsgId on success; 1 for an unknown source folder or message,
// 2 for an unknown destination, 4 when both are the same, 5 otherwise.
// Both collections' sync states are amended (mailsync.Engine.Move): the
// source forgets the message and the destination tracks its new UID, so
// the next Sync of either neither deletes nor adds it again. When the
// server does not report the new UID (no UIDPLUS) the answer is Status 3
// without DstMsgId and the destination's next Sync adds the message.
func (m *mailSync) moveItems(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
	defer m.s.busy.begin(push.Key{User: req.User, Device: req.DeviceID})()
	if body == nil {
		return Response{}, errBadRequest(StatusInvalidContent, fmt.Errorf("MoveItems without a body"))
	}
	lookup, err := m.s.mailFolders(ctx, req)
	if err != nil {
		return Response{}, err
	}
	out := wbxml.E(wbxml.MoveMoveItems)
	for _, mv := range body.ChildrenOf(wbxml.MoveMove) {
		srcMsg := mv.ChildText(wbxml.MoveSrcMsgId)
		srcID, dstID := mv.ChildText(wbxml.MoveSrcFldId), mv.ChildText(wbxml.MoveDstFldId)
		status, dstMsg := moveFailed, ""
		src, srcOK := lookup(srcID)
		dst, dstOK := lookup(dstID)
		switch {
		case !srcOK:
			status = moveInvalidSource
		case !dstOK:
			status = moveInvalidDest
		case srcID == dstID:
			status = moveSameFolder
		default:
			sess, err := req.Mailbox(ctx)
			if err != nil {
				return Response{}, err
			}
			// No Sync of either collection between the MOVE and its
			// record (colllock.go); locked in id order, as two moves
			// may take the same pair.
			unlock, err := m.lockPair(ctx, req, srcID, dstID)
			if err != nil {
				return Response{}, err
			}
			dstMsg, err = m.eng.Move(ctx, sess, req.User, req.DeviceID,
				mailsync.Collection{ID: srcID, Folder: src.ID}, srcMsg, mailsync.Collection{ID: dstID, Folder: dst.ID})
			unlock()
			switch {
			case err == nil:
				status = moveSuccess
			case errors.Is(err, backend.ErrMessageNotFound), errors.Is(err, backend.ErrFolderNotFound), errors.Is(err, backend.ErrUIDValidityChanged):
				status = moveInvalidSource
			case errors.Is(err, backend.ErrDestNotFound):
				status = moveInvalidDest
			case errors.Is(err, backend.ErrSameFolder):
				status = moveSameFolder
			case errors.Is(err, backend.ErrUnavailable):
				return Response{}, err
			default:
				m.s.log.Warn("MoveItems failed", "user", req.User, "device", req.DeviceID, "src", srcMsg, "dst", dstID, "err", err)
			}
		}
		r := wbxml.E(wbxml.MoveResponse, wbxml.T(wbxml.MoveSrcMsgId, srcMsg), wbxml.T(wbxml.MoveStatus, strconv.Itoa(status)))
		if dstMsg != "" {
			r.Add(wbxml.T(wbxml.MoveDstMsgId, dstMsg))
		}
		out.Add(r)
	}
	return Response{Element: out}, nil
}

// lockPair takes the collection locks of a move's source and destination
// (collectionLocks), in id order.
func (m *mailSync) lockPair(ctx context.Context, req *Request, a, b string) (unlock func(), err error) {
	if b < a {
		a, b = b, a
	}
	first, err := m.s.colls.lock(ctx, collectionKey{req.User, req.DeviceID, a})
	if err != nil {
		return nil, err
	}
	second, err := m.s.colls.lock(ctx, collectionKey{req.User, req.DeviceID, b})
	if err != nil {
		first()
		return nil, err
	}
	return func() { second(); first() }, nil
}
