package eas

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/easgate/easgate/backend"
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

// ioFetch is one answered Fetch: its element, or, for an attachment
// whose bytes are read while the response is written, what to send. A
// whole item whose body is the whole MIME message has both: the element
// lacks only the body's data, read while the response is written too.
type ioFetch struct {
	e    *wbxml.Element
	att  *ioAttachment
	mime *ioMIME
}

// ioMIME is a whole item (MS-ASCMD 2.2.3.69.1) whose body is the whole
// MIME message (MS-ASAIRS 2.2.2.22.1, Type 4, no TruncationSize). Its
// message is read from the mail server only while the response is
// written, like an attachment, so a request holds one mail server
// connection at a time and never the message in memory.
type ioMIME struct {
	folder backend.FolderID
	uid    backend.UID
	coll   string
	body   *mailitem.MIMEBody
	fail   func(status int) *wbxml.Element // the Fetch answer if the message cannot be read
}

// ioAttachment is an attachment found in its message's structure. Its
// bytes are opened only while the response is written, one attachment at
// a time, so that a request holds one mail server connection however
// many attachments it fetches.
type ioAttachment struct {
	ref         string
	folder      backend.FolderID
	uid         backend.UID
	path        string
	ctype       string
	ranged      bool
	first, last int64 // the Range, both inclusive
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
// Attachments are streamed: their bytes go from the mail server (IMAP
// BINARY, decoded there) through the encoder into the response spool
// (see writeResponse), never whole in memory. The spool also means that a
// failure half way through an attachment (the mail server hangs up)
// still becomes a clean error response: nothing has been sent yet.
//
// A whole item's MIME body (Type 4 without TruncationSize: the whole
// message, IMAP BODY.PEEK[]) is streamed too, by way of a temporary file,
// as its EstimatedDataSize, written before the data, is the size of the
// data made XML-safe (mailitem.MIMEBody.Copy); with MS-ASAcceptMultiPart
// it is a part of the multipart body (airsyncbase:Body > Part). A
// truncated MIME body is bounded by its TruncationSize and is built in
// memory with the rest of the item.
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
	lookup, err := s.mailFolders(ctx, req)
	if err != nil {
		return Response{}, err
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
	// Attachments get an empty Fetch element in the tree, filled in
	// when the response is written; MIME bodies get their data then.
	pending := map[*wbxml.Element]ioFetch{}
	var order []*wbxml.Element
	for _, f := range body.ChildrenOf(wbxml.ItemOperationsFetch) {
		r, err := s.ioFetchOne(ctx, req, f, lookup)
		if err != nil {
			return Response{}, err
		}
		if r.att != nil {
			r.e = wbxml.E(wbxml.ItemOperationsFetch)
		}
		if r.att != nil || r.mime != nil {
			pending[r.e] = r
			order = append(order, r.e)
		}
		resp.Add(r.e)
	}
	doc := wbxml.E(wbxml.ItemOperationsItemOperations, wbxml.T(wbxml.ItemOperationsStatus, strconv.Itoa(ioSuccess)))
	if len(resp.Children) > 0 {
		doc.Add(resp)
	}
	switch {
	case req.AcceptMultiPart:
		return Response{ContentType: ContentTypeMultipart, Status: ioSuccess, Body: func(w io.Writer) error {
			return s.writeMultipartFetches(ctx, req, w, doc, order, pending)
		}}, nil
	case len(pending) == 0:
		return Response{Element: doc}, nil
	default:
		return Response{Status: ioSuccess, Body: func(w io.Writer) error { return s.writeInlineFetches(ctx, req, w, doc, pending) }}, nil
	}
}

// attachmentBody is the bytes of an attachment, or of its Range, being
// sent: Size bytes exactly.
type attachmentBody struct {
	io.Reader
	size  int64
	close func() error
}

// openAttachment opens the bytes of an attachment and returns them with
// the attachment's Fetch element (Status, FileReference and Properties
// with ContentType, and Range and Total for a Range); for a Fetch that
// fails it returns only the element, with its status. The caller must
// close the body. The error is for failures of the whole request (the
// mail server is unavailable).
func (s *Server) openAttachment(ctx context.Context, req *Request, a *ioAttachment) (*attachmentBody, *wbxml.Element, error) {
	refEl := wbxml.T(wbxml.AirSyncBaseFileReference, a.ref)
	fail := func(st int) *wbxml.Element {
		return wbxml.E(wbxml.ItemOperationsFetch, wbxml.T(wbxml.ItemOperationsStatus, strconv.Itoa(st)), refEl)
	}
	sess, err := req.Mailbox(ctx)
	if err != nil {
		return nil, nil, err
	}
	var opts backend.PartOptions
	if a.ranged {
		opts = backend.PartOptions{Offset: a.first, Limit: a.last - a.first + 1}
	}
	pr, err := sess.OpenPart(ctx, a.folder, a.uid, a.path, opts)
	if err == nil && pr.Total() < 0 {
		// Decoded by the backend, size unknown: read it whole into a
		// temporary file to learn its size, then take the Range there.
		if a.ranged {
			pr.Close()
			pr, err = sess.OpenPart(ctx, a.folder, a.uid, a.path, backend.PartOptions{})
		}
		if err == nil {
			return s.spooledAttachment(req, pr, a, fail, refEl)
		}
	}
	if err != nil {
		st, err := backendFailure(err, ioInvalidAttachment)
		if err != nil {
			return nil, nil, err
		}
		s.log.Warn("ItemOperations Fetch: attachment not opened", "user", req.User, "ref", a.ref, "status", st)
		return nil, fail(st), nil
	}
	total := pr.Total()
	if a.ranged && a.first >= total {
		pr.Close()
		return nil, fail(ioBadRange), nil
	}
	return &attachmentBody{Reader: pr, size: pr.Size(), close: pr.Close}, s.attachmentElement(a, refEl, total), nil
}

// spooledAttachment reads a part of unknown size into a temporary file
// and answers from there. A part that cannot be decoded (invalid base64)
// fails its Fetch with Status 3, as it does when the server decodes it.
func (s *Server) spooledAttachment(req *Request, pr backend.PartReader, a *ioAttachment, fail func(int) *wbxml.Element, refEl *wbxml.Element) (*attachmentBody, *wbxml.Element, error) {
	body, err := spoolAttachment(pr, pr.Size())
	if cerr := pr.Close(); err == nil && cerr != nil {
		body.close()
		err = cerr
	}
	if err != nil {
		st, ferr := backendFailure(err, ioInvalidAttachment)
		if ferr != nil {
			return nil, nil, ferr
		}
		s.log.Warn("ItemOperations Fetch: attachment not read", "user", req.User, "ref", a.ref, "status", st, "err", err)
		return nil, fail(st), nil
	}
	total := body.size
	if !a.ranged {
		return body, s.attachmentElement(a, refEl, total), nil
	}
	if a.first >= total {
		body.close()
		return nil, fail(ioBadRange), nil
	}
	n := min(a.last, total-1) - a.first + 1
	body.Reader = io.NewSectionReader(body.Reader.(io.ReaderAt), a.first, n)
	body.size = n
	return body, s.attachmentElement(a, refEl, total), nil
}

// attachmentElement is the Fetch element of an attachment that is sent;
// Data or Part is added by the caller.
func (s *Server) attachmentElement(a *ioAttachment, refEl *wbxml.Element, total int64) *wbxml.Element {
	props := wbxml.E(wbxml.ItemOperationsProperties, wbxml.T(wbxml.AirSyncBaseContentType, a.ctype))
	if a.ranged {
		props.Add(wbxml.T(wbxml.ItemOperationsRange, fmt.Sprintf("%d-%d", a.first, min(a.last, total-1))),
			wbxml.T(wbxml.ItemOperationsTotal, strconv.FormatInt(total, 10)))
	}
	return wbxml.E(wbxml.ItemOperationsFetch, wbxml.T(wbxml.ItemOperationsStatus, strconv.Itoa(ioSuccess)), refEl, props)
}

// spoolAttachment copies r (size bytes, or up to EOF when size < 0) into
// a temporary file, which the body's close removes.
func spoolAttachment(r io.Reader, size int64) (*attachmentBody, error) {
	return spoolToFile("an attachment", func(w io.Writer) (int64, error) {
		if size >= 0 {
			return io.CopyN(w, r, size)
		}
		return io.Copy(w, r)
	})
}

// spoolToFile writes what write writes (and counts) into a temporary
// file and returns it to be read from the start; the body's close
// removes the file. what names the content for errors.
func spoolToFile(what string, write func(io.Writer) (int64, error)) (*attachmentBody, error) {
	f, err := os.CreateTemp("", "easgate-attachment-*")
	if err != nil {
		return nil, fmt.Errorf("spooling %s: %w", what, err)
	}
	body := &attachmentBody{Reader: f, close: func() error {
		f.Close()
		return os.Remove(f.Name())
	}}
	body.size, err = write(f)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		body.close()
		return nil, fmt.Errorf("spooling %s: %w", what, err)
	}
	return body, nil
}

// openMIME reads the message of a whole item's MIME body from the mail
// server into a temporary file, made XML-safe on the way by
// mailitem.MIMEBody.Copy (which also sets the body's EstimatedDataSize),
// and returns it with the item's Fetch element; for a Fetch that fails
// (the message is gone) it returns only the element, with its status.
// The caller must close the body. The error is for failures of the whole
// request (the mail server is unavailable).
func (s *Server) openMIME(ctx context.Context, req *Request, e *wbxml.Element, m *ioMIME) (*attachmentBody, *wbxml.Element, error) {
	sess, err := req.Mailbox(ctx)
	if err != nil {
		return nil, nil, err
	}
	var body *attachmentBody
	msg, err := sess.Message(ctx, m.folder, m.uid)
	if err == nil {
		body, err = spoolToFile("a MIME body", func(w io.Writer) (int64, error) { return m.body.Copy(w, msg) })
		if cerr := msg.Close(); err == nil && cerr != nil {
			body.close()
			body, err = nil, cerr
		}
	}
	if err != nil {
		st, ferr := backendFailure(err, ioObjectNotFound)
		if ferr != nil {
			return nil, nil, ferr
		}
		s.log.Warn("ItemOperations Fetch: message not read", "user", req.User, "collection", m.coll, "uid", uint32(m.uid), "status", st, "err", err)
		return nil, m.fail(st), nil
	}
	return body, e, nil
}

// encodeFilled writes e as Element.Encode does, except that the content
// of each element in fill is written by its function.
func encodeFilled(enc *wbxml.Encoder, e *wbxml.Element, fill map[*wbxml.Element]func(*wbxml.Encoder) error) error {
	f, ok := fill[e]
	if !ok && len(e.Children) == 0 {
		return e.Encode(enc)
	}
	if err := enc.Start(e.Tag); err != nil {
		return err
	}
	if ok {
		if err := f(enc); err != nil {
			return err
		}
	} else {
		for _, c := range e.Children {
			if err := encodeFilled(enc, c, fill); err != nil {
				return err
			}
		}
	}
	return enc.End()
}

// writeInlineFetches writes a WBXML response whose attachments are base64
// Data (MS-ASCMD 2.2.3.39.1) and whose whole MIME bodies are the text of
// their Data, each read from the mail server while it is encoded, one
// after the other.
func (s *Server) writeInlineFetches(ctx context.Context, req *Request, w io.Writer, doc *wbxml.Element, pending map[*wbxml.Element]ioFetch) error {
	fill := make(map[*wbxml.Element]func(*wbxml.Encoder) error, len(pending))
	for el, p := range pending {
		fill[el] = func(enc *wbxml.Encoder) error {
			var (
				body *attachmentBody
				fe   *wbxml.Element
				err  error
			)
			inner := map[*wbxml.Element]func(*wbxml.Encoder) error{}
			if p.mime != nil {
				// The MIME body's Data is its text, as Build makes it
				// (an empty one stays <Data/>).
				body, fe, err = s.openMIME(ctx, req, el, p.mime)
				if body != nil {
					defer body.close()
					if body.size > 0 {
						inner[p.mime.body.Data()] = func(enc *wbxml.Encoder) error { return enc.TextFrom(body) }
					}
				}
			} else {
				body, fe, err = s.openAttachment(ctx, req, p.att)
				if body != nil {
					defer body.close()
					data := &wbxml.Element{Tag: wbxml.ItemOperationsData}
					fe.Child(wbxml.ItemOperationsProperties).Add(data)
					inner[data] = func(enc *wbxml.Encoder) error {
						return enc.TextFrom(newBase64Encoder(body))
					}
				}
			}
			if err != nil {
				return err
			}
			for _, c := range fe.Children {
				if err := encodeFilled(enc, c, inner); err != nil {
					return err
				}
			}
			return nil
		}
	}
	enc := wbxml.NewEncoder(w)
	if err := encodeFilled(enc, doc, fill); err != nil {
		return fmt.Errorf("encoding ItemOperations: %w", err)
	}
	return enc.Close()
}

// writeMultipartFetches writes the multipart body of MS-ASCMD 2.2.2.9.1.1:
// the part count, an (offset, length) pair per part, all 32-bit
// little-endian, then the parts: the WBXML response, whose attachments
// and MIME bodies name their Part, and the bytes of each. Every length
// comes first, so each attachment is opened (learning its size) before
// anything is written; all but the last are copied to temporary files on
// the way, so that one mail server connection is held at a time, and the
// last is streamed straight from the mail server. MIME bodies are always
// copied to temporary files (openMIME): their size is known only once
// they are made XML-safe.
func (s *Server) writeMultipartFetches(ctx context.Context, req *Request, w io.Writer, doc *wbxml.Element, order []*wbxml.Element, pending map[*wbxml.Element]ioFetch) error {
	var bodies []*attachmentBody
	defer func() {
		for _, b := range bodies {
			b.close()
		}
	}()
	for i, el := range order {
		if m := pending[el].mime; m != nil {
			body, fe, err := s.openMIME(ctx, req, el, m)
			if err != nil {
				return err
			}
			if body != nil {
				bodies = append(bodies, body)
				m.body.UsePart(len(bodies))
			}
			el.Children = fe.Children
			continue
		}
		body, fe, err := s.openAttachment(ctx, req, pending[el].att)
		if err != nil {
			return err
		}
		if body != nil && i < len(order)-1 {
			spooled, err := spoolAttachment(body, body.size)
			body.close()
			if err != nil {
				return err
			}
			body = spooled
		}
		if body != nil {
			bodies = append(bodies, body)
			fe.Child(wbxml.ItemOperationsProperties).Add(wbxml.T(wbxml.ItemOperationsPart, strconv.Itoa(len(bodies))))
		}
		el.Children = fe.Children
	}
	head, err := wbxml.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encoding ItemOperations: %w", err)
	}
	sizes := []int64{int64(len(head))}
	for _, b := range bodies {
		sizes = append(sizes, b.size)
	}
	if err := writeMultipartHeader(w, sizes); err != nil {
		return err
	}
	if _, err := w.Write(head); err != nil {
		return err
	}
	for i, b := range bodies {
		if n, err := io.CopyN(w, b, b.size); err != nil {
			return fmt.Errorf("writing multipart part %d: %d of %d bytes: %w", i+1, n, b.size, err)
		}
	}
	return nil
}

// writeMultipartHeader writes the part count and an (offset, length) pair
// per part, 32-bit little-endian (MS-ASCMD 2.2.2.9.1.1).
func writeMultipartHeader(w io.Writer, sizes []int64) error {
	hdr := make([]byte, 0, 4+8*len(sizes))
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(sizes)))
	off := int64(4 + 8*len(sizes))
	for _, n := range sizes {
		if off+n > 1<<31-1 {
			return errors.New("multipart response over 2 GiB")
		}
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(off))
		hdr = binary.LittleEndian.AppendUint32(hdr, uint32(n))
		off += n
	}
	_, err := w.Write(hdr)
	return err
}

// base64Encoder yields the standard base64 encoding (RFC 4648, padded, no
// line breaks) of what src yields, a block at a time.
type base64Encoder struct {
	src     io.Reader
	in      [12 << 10]byte // a multiple of 3: only the last block is padded
	out     [16 << 10]byte
	pending []byte
	eof     bool
}

func newBase64Encoder(src io.Reader) *base64Encoder { return &base64Encoder{src: src} }

func (b *base64Encoder) Read(p []byte) (int, error) {
	for len(b.pending) == 0 {
		if b.eof {
			return 0, io.EOF
		}
		n, err := io.ReadFull(b.src, b.in[:])
		switch err {
		case nil:
		case io.EOF, io.ErrUnexpectedEOF:
			b.eof = true
		default:
			return 0, err
		}
		base64.StdEncoding.Encode(b.out[:], b.in[:n])
		b.pending = b.out[:base64.StdEncoding.EncodedLen(n)]
	}
	n := copy(p, b.pending)
	b.pending = b.pending[n:]
	return n, nil
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
		coll, sid := f.ChildText(wbxml.AirSyncCollectionId), f.ChildText(wbxml.AirSyncServerId)
		ids := []*wbxml.Element{wbxml.T(wbxml.AirSyncCollectionId, coll), wbxml.T(wbxml.AirSyncServerId, sid)}
		return s.fetchItem(ctx, req, coll, sid, ids, opts, lookup, fail)
	}
	if f.Child(wbxml.SearchLongId) != nil {
		long := f.ChildText(wbxml.SearchLongId)
		coll, _ := parseLongID(long)
		return s.fetchItem(ctx, req, coll, long, []*wbxml.Element{wbxml.T(wbxml.SearchLongId, long)}, opts, lookup, fail)
	}
	return fail(ioProtocolError), nil
}

// A LongId (MS-ASCMD 2.2.3.93) names a Search result for ItemOperations
// Fetch (and SmartReply/SmartForward). easgate's LongIds are the message's
// ServerId, CollectionId:UID: it names the folder as well as the message,
// stays valid as long as the ServerId does, and reaches only folders of the
// device's own hierarchy, as a ServerId does. Search hands them out.

// parseLongID returns the CollectionId a LongId names; ok is false when it
// has none.
func parseLongID(long string) (collection string, ok bool) {
	i := strings.LastIndexByte(long, ':')
	if i <= 0 {
		return "", false
	}
	return long[:i], true
}

// fetchAttachment answers a Fetch by FileReference (MS-ASCMD 2.2.3.69.1)
// as far as it can before the response is written: an unknown reference
// or a malformed Range fails here; a known attachment is returned to be
// opened and sent by openAttachment.
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
	a := &ioAttachment{ref: ref, folder: folder.ID, uid: uid, path: path, ctype: part.Type + "/" + part.Subtype}
	if opts != nil && opts.Child(wbxml.ItemOperationsRange) != nil {
		a.first, a.last, a.ranged = parseRange(opts.ChildText(wbxml.ItemOperationsRange))
		if !a.ranged {
			return fail(ioBadRange, refEl), nil
		}
	}
	return ioFetch{att: a}, nil
}

// fetchItem answers a Fetch by CollectionId and ServerId, or by LongId
// (MS-ASCMD 2.2.3.69.1): the whole message converted with the Fetch's
// BodyPreference and MIMESupport, as Sync would add it. A body that is
// the whole MIME message is left to be read while the response is
// written (ioMIME).
// ids are the elements naming the item in the answer (CollectionId and
// ServerId, or LongId).
func (s *Server) fetchItem(ctx context.Context, req *Request, coll, sid string, ids []*wbxml.Element, opts *wbxml.Element, lookup func(string) (hierarchy.Folder, bool), fail func(int, ...*wbxml.Element) ioFetch) (ioFetch, error) {
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
	o := itemOptions(opts, req.Version)
	o.Drafts = folder.Role == backend.RoleDrafts
	o.FileRef = func(path []int) string { return fileReference(coll, uid, path) }
	it, mime, err := mailitem.BuildStreamed(ctx, mailsync.NewSource(sess, folder.ID, &sums[0]), o)
	if err != nil {
		st, ferr := backendFailure(err, ioObjectNotFound)
		if ferr != nil {
			return ioFetch{}, ferr
		}
		s.log.Warn("ItemOperations Fetch: message not converted", "user", req.User, "collection", coll, "uid", uint32(uid), "status", st, "err", err)
		return fail(st, ids...), nil
	}
	e := wbxml.E(wbxml.ItemOperationsFetch, wbxml.T(wbxml.ItemOperationsStatus, strconv.Itoa(ioSuccess)))
	e.Add(ids...)
	e.Add(wbxml.T(wbxml.AirSyncClass, "Email"), it.Properties())
	if mime != nil {
		return ioFetch{e: e, mime: &ioMIME{folder: folder.ID, uid: uid, coll: coll, body: mime,
			fail: func(st int) *wbxml.Element { return fail(st, ids...).e }}}, nil
	}
	return ioFetch{e: e}, nil
}
