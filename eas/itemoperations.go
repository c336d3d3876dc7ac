package eas

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strconv"
	"strings"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/eas/mailitem"
	"github.com/easgate/easgate/eas/mailsync"
	"github.com/easgate/easgate/wbxml"
)

// ItemOperations statuses (MS-ASCMD 2.2.3.177.7).
const (
	ioSuccess           = 1
	ioProtocolError     = 2
	ioServerError       = 3
	ioObjectNotFound    = 6 // "object not found or access denied": an unknown item or collection
	ioBadRange          = 8
	ioUnknownStore      = 9
	ioInvalidAttachment = 15 // malformed or unknown FileReference
	ioUnsupported       = 156
)

// registerItemOperations registers ItemOperations when the server has a
// device store and a mail store.
func (s *Server) registerItemOperations() {
	if s.cfg.Devices == nil || s.cfg.Mail == nil {
		return
	}
	s.mustHandle("ItemOperations", s.itemOperations)
}

// fileReference returns the airsyncbase:FileReference of the attachment at
// path of message uid in collection: "<collection>:<uid>:<part path>" (the
// digest §3.10). It names a part of the user's own mailbox only, since
// every lookup goes through the device's hierarchy and the user's session.
func fileReference(collection string, uid backend.UID, path []int) string {
	return mailsync.ServerID(collection, uid) + ":" + mailitem.PathString(path)
}

// parseFileReference splits a FileReference made by fileReference; ok is
// false for anything else.
func parseFileReference(ref string) (collection string, uid backend.UID, part string, ok bool) {
	rest, part, found := cut2(ref)
	if !found || !validPartPath(part) {
		return "", 0, "", false
	}
	collection, uidText, found := cut2(rest)
	if !found || collection == "" {
		return "", 0, "", false
	}
	n, err := strconv.ParseUint(uidText, 10, 32)
	if err != nil || n == 0 {
		return "", 0, "", false
	}
	return collection, backend.UID(n), part, true
}

// cut2 cuts s at its last colon.
func cut2(s string) (before, after string, found bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}

// validPartPath reports whether p is an IMAP section number ("1", "2.1").
func validPartPath(p string) bool {
	if p == "" {
		return false
	}
	for f := range strings.SplitSeq(p, ".") {
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 || strconv.Itoa(n) != f {
			return false
		}
	}
	return true
}

// findPart returns the leaf part at IMAP section path in a BODYSTRUCTURE.
func findPart(root *backend.BodyPart, path string) *backend.BodyPart {
	if root == nil {
		return nil
	}
	if root.Type != "multipart" && (root.Path == path || (root.Path == "" && path == "1")) {
		return root
	}
	for _, c := range root.Children {
		if p := findPart(c, path); p != nil {
			return p
		}
	}
	return nil
}

// decodeTransfer undoes a part's Content-Transfer-Encoding.
func decodeTransfer(enc string, data []byte) ([]byte, error) {
	switch enc {
	case "base64":
		out := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
		n, err := base64.StdEncoding.Decode(out, data) // skips CR and LF
		if err != nil {
			// Tolerate missing padding and stray characters the way mail
			// readers do: decode what is valid.
			return io.ReadAll(base64.NewDecoder(base64.RawStdEncoding, bytes.NewReader(bytes.TrimRight(data, "=\r\n \t"))))
		}
		return out[:n], nil
	case "quoted-printable":
		return io.ReadAll(quotedprintable.NewReader(bytes.NewReader(data)))
	default: // 7bit, 8bit, binary, or none
		return data, nil
	}
}

// parseRange parses an ItemOperations Range "first-last" (MS-ASCMD
// 2.2.3.140.1; both inclusive).
func parseRange(s string) (first, last int64, ok bool) {
	a, b, found := strings.Cut(strings.TrimSpace(s), "-")
	if !found {
		return 0, 0, false
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || first < 0 || last < first {
		return 0, 0, false
	}
	return first, last, true
}

// ioFetch is one answered Fetch: its element and, for an attachment, the
// bytes its Data (or multipart Part) carries.
type ioFetch struct {
	e    *wbxml.Element
	data []byte
	has  bool // e's Properties get the data
}

// itemOperations is the ItemOperations command (MS-ASCMD 2.2.1.10, the
// digest §3.10) for the Mailbox store: Fetch of an attachment by
// FileReference (with Range), Fetch of a whole message by CollectionId and
// ServerId (with BodyPreference and MIMESupport), and EmptyFolderContents
// (with DeleteSubFolders). With MS-ASAcceptMultiPart the attachments are
// sent as parts of an application/vnd.ms-sync.multipart body instead of
// base64 Data. Unknown or malformed FileReferences get Status 15, unknown
// items and collections Status 6; every lookup goes through the device's
// own hierarchy and the user's own session, so nothing outside the
// user's mailbox can be named. Move (conversations, 14.0+) is not
// implemented: each Move is answered with Status 156, action not supported.
//
// EmptyFolderContents does not touch the collection's sync state: the
// next Sync of the collection reports the removed messages as Deletes of
// items the client has already dropped locally (Deletes of unknown
// ServerIds, which clients are expected to ignore; not verified on a
// phone).
func (s *Server) itemOperations(ctx context.Context, req *Request, body *wbxml.Element) (Response, error) {
	if body == nil {
		return Response{}, errBadRequest(StatusInvalidContent, errors.New("ItemOperations without a body"))
	}
	h, err := hierarchy.Load(ctx, s.cfg.Devices, req.User, req.DeviceID)
	if err != nil && !errors.Is(err, devices.ErrNotFound) {
		return Response{}, err
	}
	lookup := func(id string) (hierarchy.Folder, bool) {
		if h == nil {
			return hierarchy.Folder{}, false
		}
		f, ok := h.Folder(id)
		return f, ok && !f.NoSelect
	}
	resp := wbxml.E(wbxml.ItemOperationsResponse)
	// The schema orders the answers Move*, EmptyFolderContents*, Fetch*.
	for _, mv := range body.ChildrenOf(wbxml.ItemOperationsMove) {
		// ConversationId is opaque (MS-ASCMD 2.2.3.35.1): echoed as sent.
		conv := &wbxml.Element{Tag: wbxml.ItemOperationsConversationId, IsOpaque: true}
		if c := mv.Child(wbxml.ItemOperationsConversationId); c != nil {
			conv = &wbxml.Element{Tag: c.Tag, Text: c.Text, Opaque: c.Opaque, IsOpaque: c.IsOpaque}
		}
		resp.Add(wbxml.E(wbxml.ItemOperationsMove,
			wbxml.T(wbxml.ItemOperationsStatus, strconv.Itoa(ioUnsupported)), conv))
	}
	for _, ef := range body.ChildrenOf(wbxml.ItemOperationsEmptyFolderContents) {
		e, err := s.emptyFolderContents(ctx, req, ef, lookup)
		if err != nil {
			return Response{}, err
		}
		resp.Add(e)
	}
	var fetches []ioFetch
	for _, f := range body.ChildrenOf(wbxml.ItemOperationsFetch) {
		r, err := s.ioFetchOne(ctx, req, f, lookup)
		if err != nil {
			return Response{}, err
		}
		fetches = append(fetches, r)
	}
	doc := wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.T(wbxml.ItemOperationsStatus, strconv.Itoa(ioSuccess)))
	if len(resp.Children) > 0 || len(fetches) > 0 {
		doc.Add(resp)
	}
	if !req.AcceptMultiPart {
		for _, f := range fetches {
			if f.has {
				f.e.Child(wbxml.ItemOperationsProperties).Add(wbxml.T(wbxml.ItemOperationsData, base64String(f.data)))
			}
			resp.Add(f.e)
		}
		return Response{Element: doc}, nil
	}
	var parts [][]byte
	for _, f := range fetches {
		if f.has {
			parts = append(parts, f.data)
			f.e.Child(wbxml.ItemOperationsProperties).Add(wbxml.T(wbxml.ItemOperationsPart, strconv.Itoa(len(parts))))
		}
		resp.Add(f.e)
	}
	head, err := wbxml.Marshal(doc)
	if err != nil {
		return Response{}, fmt.Errorf("encoding ItemOperations: %w", err)
	}
	parts = append([][]byte{head}, parts...)
	return Response{ContentType: ContentTypeMultipart, Body: func(w io.Writer) error { return writeMultipart(w, parts) }}, nil
}

// base64String encodes b with one allocation (EncodeToString makes two).
func base64String(b []byte) string {
	var sb strings.Builder
	sb.Grow(base64.StdEncoding.EncodedLen(len(b)))
	enc := base64.NewEncoder(base64.StdEncoding, &sb)
	enc.Write(b) // a strings.Builder never fails
	enc.Close()
	return sb.String()
}

// writeMultipart writes the multipart body of MS-ASCMD 2.2.2.9.1.1: the
// part count, an (offset, length) pair per part, all 32-bit little-endian,
// then the parts.
func writeMultipart(w io.Writer, parts [][]byte) error {
	hdr := make([]byte, 0, 4+8*len(parts))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(parts)))
	off := int64(4 + 8*len(parts))
	for _, p := range parts {
		if off+int64(len(p)) > 1<<31-1 {
			return errors.New("multipart response over 2 GiB")
		}
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(off))
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(p)))
		off += int64(len(p))
	}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// backendFailure turns a backend error into a per-element status, or
// returns it when the whole request must fail (mail server unreachable).
func backendFailure(err error, notFound int) (int, error) {
	switch {
	case errors.Is(err, backend.ErrUnavailable), errors.Is(err, backend.ErrAuthFailed):
		return 0, err
	case errors.Is(err, backend.ErrMessageNotFound), errors.Is(err, backend.ErrFolderNotFound),
		errors.Is(err, backend.ErrInvalidSection), errors.Is(err, backend.ErrUIDValidityChanged):
		return notFound, nil
	default:
		return ioServerError, nil
	}
}

// emptyFolderContents answers one EmptyFolderContents (MS-ASCMD
// 2.2.3.59): every message of the collection is deleted, and with
// DeleteSubFolders its subfolders too.
func (s *Server) emptyFolderContents(ctx context.Context, req *Request, ef *wbxml.Element, lookup func(string) (hierarchy.Folder, bool)) (*wbxml.Element, error) {
	id := ef.ChildText(wbxml.AirSyncCollectionId)
	status := ioSuccess
	if f, ok := lookup(id); !ok {
		status = ioObjectNotFound
	} else {
		sub := false
		if o := ef.Child(wbxml.ItemOperationsOptions); o != nil && o.Child(wbxml.ItemOperationsDeleteSubFolders) != nil {
			sub = true
		}
		sess, err := req.Mailbox(ctx)
		if err != nil {
			return nil, err
		}
		if err := sess.EmptyFolder(ctx, f.ID, sub); err != nil {
			if status, err = backendFailure(err, ioObjectNotFound); err != nil {
				return nil, err
			}
			s.log.Warn("ItemOperations EmptyFolderContents failed", "user", req.User, "collection", id, "status", status)
		}
	}
	return wbxml.E(wbxml.ItemOperationsEmptyFolderContents,
		wbxml.T(wbxml.ItemOperationsStatus, strconv.Itoa(status)),
		wbxml.T(wbxml.AirSyncCollectionId, id)), nil
}

// ioFetchOne answers one Fetch.
func (s *Server) ioFetchOne(ctx context.Context, req *Request, f *wbxml.Element, lookup func(string) (hierarchy.Folder, bool)) (ioFetch, error) {
	fail := func(st int, ids ...*wbxml.Element) ioFetch {
		return ioFetch{e: wbxml.E(wbxml.ItemOperationsFetch, wbxml.T(wbxml.ItemOperationsStatus, strconv.Itoa(st))).Add(ids...)}
	}
	if store := f.ChildText(wbxml.ItemOperationsStore); !strings.EqualFold(store, "Mailbox") {
		return fail(ioUnknownStore), nil
	}
	opts := f.Child(wbxml.ItemOperationsOptions)
	if f.Child(wbxml.AirSyncBaseFileReference) != nil {
		return s.fetchAttachment(ctx, req, f.ChildText(wbxml.AirSyncBaseFileReference), opts, lookup, fail)
	}
	if f.Child(wbxml.AirSyncServerId) != nil {
		return s.fetchItem(ctx, req, f.ChildText(wbxml.AirSyncCollectionId), f.ChildText(wbxml.AirSyncServerId), opts, lookup, fail)
	}
	return fail(ioProtocolError), nil
}

// fetchAttachment answers a Fetch by FileReference (MS-ASCMD 2.2.3.69.1):
// ContentType, and the decoded bytes (or the Range of them, with Total).
func (s *Server) fetchAttachment(ctx context.Context, req *Request, ref string, opts *wbxml.Element, lookup func(string) (hierarchy.Folder, bool), fail func(int, ...*wbxml.Element) ioFetch) (ioFetch, error) {
	refEl := wbxml.T(wbxml.AirSyncBaseFileReference, ref)
	coll, uid, path, ok := parseFileReference(ref)
	folder, known := lookup(coll)
	if !ok || !known {
		return fail(ioInvalidAttachment, refEl), nil
	}
	sess, err := req.Mailbox(ctx)
	if err != nil {
		return ioFetch{}, err
	}
	sums, err := sess.Summaries(ctx, folder.ID, backend.NewUIDSet(uid))
	if err != nil {
		st, err := backendFailure(err, ioInvalidAttachment)
		return fail(st, refEl), err
	}
	var part *backend.BodyPart
	if len(sums) == 1 {
		part = findPart(sums[0].Structure, path)
	}
	if part == nil {
		return fail(ioInvalidAttachment, refEl), nil
	}
	raw, err := sess.Section(ctx, folder.ID, uid, path, 0, 0)
	if err != nil {
		st, err := backendFailure(err, ioInvalidAttachment)
		return fail(st, refEl), err
	}
	data, err := decodeTransfer(part.Encoding, raw)
	if err != nil {
		return fail(ioServerError, refEl), nil
	}
	props := wbxml.E(wbxml.ItemOperationsProperties, wbxml.T(wbxml.AirSyncBaseContentType, part.Type+"/"+part.Subtype))
	if opts != nil && opts.Child(wbxml.ItemOperationsRange) != nil {
		first, last, ok := parseRange(opts.ChildText(wbxml.ItemOperationsRange))
		total := int64(len(data))
		if !ok || first >= total {
			return fail(ioBadRange, refEl), nil
		}
		last = min(last, total-1)
		data = data[first : last+1]
		props.Add(wbxml.T(wbxml.ItemOperationsRange, fmt.Sprintf("%d-%d", first, last)),
			wbxml.T(wbxml.ItemOperationsTotal, strconv.FormatInt(total, 10)))
	}
	e := wbxml.E(wbxml.ItemOperationsFetch, wbxml.T(wbxml.ItemOperationsStatus, strconv.Itoa(ioSuccess)), refEl, props)
	return ioFetch{e: e, data: data, has: true}, nil
}

// fetchItem answers a Fetch by CollectionId and ServerId (MS-ASCMD
// 2.2.3.69.1): the whole message converted with the Fetch's
// BodyPreference and MIMESupport, as Sync would add it.
func (s *Server) fetchItem(ctx context.Context, req *Request, coll, sid string, opts *wbxml.Element, lookup func(string) (hierarchy.Folder, bool), fail func(int, ...*wbxml.Element) ioFetch) (ioFetch, error) {
	ids := []*wbxml.Element{wbxml.T(wbxml.AirSyncCollectionId, coll), wbxml.T(wbxml.AirSyncServerId, sid)}
	folder, known := lookup(coll)
	uid := mailsync.ParseServerID(coll, sid)
	if !known || uid == 0 {
		return fail(ioObjectNotFound, ids...), nil
	}
	sess, err := req.Mailbox(ctx)
	if err != nil {
		return ioFetch{}, err
	}
	sums, err := sess.Summaries(ctx, folder.ID, backend.NewUIDSet(uid))
	if err != nil {
		st, err := backendFailure(err, ioObjectNotFound)
		return fail(st, ids...), err
	}
	if len(sums) != 1 {
		return fail(ioObjectNotFound, ids...), nil
	}
	rc, err := sess.Message(ctx, folder.ID, uid)
	if err != nil {
		st, err := backendFailure(err, ioObjectNotFound)
		return fail(st, ids...), err
	}
	raw, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		st, err := backendFailure(err, ioObjectNotFound)
		return fail(st, ids...), err
	}
	o := itemOptions(opts, req.Version)
	o.Drafts = folder.Role == backend.RoleDrafts
	o.FileRef = func(path []int) string { return fileReference(coll, uid, path) }
	sum := sums[0]
	it, err := mailitem.Build(ctx, mailitem.FromBytes(raw, mailitem.Meta{UID: uint32(uid), Flags: sum.Flags, InternalDate: sum.Received, Size: sum.Size}), o)
	if err != nil {
		s.log.Warn("ItemOperations Fetch: message not converted", "user", req.User, "collection", coll, "uid", uint32(uid), "err", err)
		return fail(ioServerError, ids...), nil
	}
	e := wbxml.E(wbxml.ItemOperationsFetch, wbxml.T(wbxml.ItemOperationsStatus, strconv.Itoa(ioSuccess)))
	e.Add(ids...)
	e.Add(wbxml.T(wbxml.AirSyncClass, "Email"), it.Properties())
	return ioFetch{e: e}, nil
}
