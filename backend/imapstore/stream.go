package imapstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message"
	"github.com/emersion/go-message/textproto"

	"github.com/easgate/easgate/backend"
)

// drainMax is how many unread bytes Close still reads off the wire to keep
// the connection; with more left (a short Range of a big attachment) the
// connection is closed instead, which is cheaper than reading the rest.
const drainMax = 1 << 20

// OpenPart implements backend.Session. On one borrowed connection it
// looks the part up in the message's BODY structure (so a missing part or
// a multipart is ErrInvalidSection, where BINARY alone answers with an
// empty literal) and sends UID FETCH BINARY.PEEK[part] (BODY.PEEK[part]
// for Raw, for an encoding nobody knows, or on a server without BINARY,
// which is then decoded here). It returns once the literal has begun:
// its length is the part's exact size.
//
// go-imap beta.8 and Dovecot 2.3 quirks shape it: Dovecot's BINARY.SIZE
// is not the size of what BINARY then sends (1,168 bytes short for a
// 300,000-byte base64 attachment) and fails with NO [UNKNOWN-CTE] for
// every part of a message that has one part in an unknown encoding, so
// it is not asked; and the client cannot parse Dovecot's answer to a
// partial BINARY fetch ("BINARY[2]<3> ~{4}" kills the connection), so
// Offset and Limit are applied here to the whole BINARY.PEEK[part].
// Dovecot refuses BINARY of a part whose content is not valid in its
// encoding (NO [PARSE] for "AA!!" in base64 or "=ZZ" in quoted-printable);
// that is an error here too, not a fallback to the raw bytes.
func (s *session) OpenPart(ctx context.Context, id backend.FolderID, uid backend.UID, part string, opts backend.PartOptions) (backend.PartReader, error) {
	if uid == 0 {
		return nil, fmt.Errorf("%w: UID 0", backend.ErrMessageNotFound)
	}
	sec, ok := parseSection(part)
	if !ok || part == "" || sec.Specifier != imap.PartSpecifierNone || opts.Offset < 0 {
		return nil, fmt.Errorf("%w: part %q at %d", backend.ErrInvalidSection, part, opts.Offset)
	}
	if s.closed.Load() {
		return nil, backend.ErrClosed
	}
	return lend(ctx, s, func(c *conn) (backend.PartReader, error) {
		r := &partReader{ctx: ctx, c: c, uid: uid, path: sec.Part, part: part, offset: opts.Offset, limit: opts.Limit, total: -1}
		if err := r.open(c, id, opts.Raw); err != nil {
			return nil, err
		}
		return r, nil
	}, func(r backend.PartReader, release func(bool)) { r.(*partReader).release = release })
}

// knownEncoding reports whether enc is a Content-Transfer-Encoding of
// RFC 2045 (or none).
func knownEncoding(enc string) bool {
	switch enc {
	case "", "7bit", "8bit", "binary", "base64", "quoted-printable":
		return true
	}
	return false
}

// fetchLeaf returns the non-multipart part at path in the message's BODY
// structure.
func fetchLeaf(c *conn, uid backend.UID, path []int) (*imap.BodyStructureSinglePart, error) {
	cmd := c.client.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{UID: true, BodyStructure: &imap.FetchItemBodyStructure{}})
	msgs, err := cmd.Collect()
	if err != nil {
		return nil, fmt.Errorf("UID FETCH BODY: %w", err)
	}
	for _, m := range msgs {
		if m.UID != imap.UID(uid) {
			continue
		}
		if m.BodyStructure == nil {
			return nil, fmt.Errorf("%w: UID %d: no BODY in the answer", errServer, uid)
		}
		leaf := leafAt(m.BodyStructure, path)
		if leaf == nil {
			return nil, fmt.Errorf("%w: UID %d has no leaf part %s", backend.ErrInvalidSection, uid, sectionPath(path))
		}
		return leaf, nil
	}
	return nil, fmt.Errorf("%w: UID %d", backend.ErrMessageNotFound, uid)
}

// leafAt walks a BODYSTRUCTURE to the non-multipart part at path (RFC 3501
// 6.4.5): a multipart's children are numbered from 1; a single-part
// message's body is part 1; below a message/rfc822 part come the parts of
// the embedded message (its body is 1 when it is not a multipart).
func leafAt(bs imap.BodyStructure, path []int) *imap.BodyStructureSinglePart {
	cur := bs
	for i, n := range path {
		if single, ok := cur.(*imap.BodyStructureSinglePart); ok {
			if i == 0 {
				if n != 1 {
					return nil
				}
				continue
			}
			if single.MessageRFC822 == nil || single.MessageRFC822.BodyStructure == nil {
				return nil
			}
			cur = single.MessageRFC822.BodyStructure
			if _, multi := cur.(*imap.BodyStructureMultiPart); !multi {
				if n != 1 {
					return nil
				}
				continue
			}
		}
		multi := cur.(*imap.BodyStructureMultiPart)
		if n < 1 || n > len(multi.Children) {
			return nil
		}
		cur = multi.Children[n-1]
	}
	single, _ := cur.(*imap.BodyStructureSinglePart)
	return single
}

// partReader is a backend.PartReader over a FETCH whose literal has
// begun: a part (OpenPart) or the whole message (Message, part "[]"). It
// is not safe for concurrent use.
type partReader struct {
	ctx           context.Context
	c             *conn
	uid           backend.UID
	path          []int
	part          string
	offset, limit int64
	total         int64 // -1: decoded here, size unknown

	cmd     *imapclient.FetchCommand
	lit     *countingReader // the literal as it comes off the wire
	litSize int64
	out     io.Reader // what Read hands out
	read    int64
	err     error // sticky
	closed  bool
	release func(ok bool)
}

var _ backend.PartReader = (*partReader)(nil)

// Size implements backend.PartReader.
func (r *partReader) Size() int64 {
	if r.total < 0 {
		return -1
	}
	n := max(0, r.total-r.offset)
	if r.limit > 0 {
		n = min(n, r.limit)
	}
	return n
}

// Total implements backend.PartReader.
func (r *partReader) Total() int64 { return r.total }

// errReaderClosed is returned by Read after Close.
var errReaderClosed = errors.New("imapstore: read from a closed part reader")

// Read implements io.Reader.
func (r *partReader) Read(p []byte) (int, error) {
	switch {
	case r.closed:
		return 0, errReaderClosed
	case r.err != nil:
		return 0, r.err
	}
	n, err := r.out.Read(p)
	r.read += int64(n)
	switch {
	case err == io.EOF:
		if size := r.Size(); size >= 0 && r.read != size {
			r.err = fmt.Errorf("%w: part %s of UID %d ended after %d bytes, %d announced", errServer, r.part, r.uid, r.read, size)
			return n, r.err
		}
	case err != nil:
		if r.ctx.Err() != nil || r.c.isClosed() {
			err = fmt.Errorf("%w: reading part %s of UID %d: %w", backend.ErrUnavailable, r.part, r.uid, err)
		}
		r.err = err
	}
	return n, err
}

// open selects the folder, finds the part, fetches it and sets up r.out.
func (r *partReader) open(c *conn, id backend.FolderID, raw bool) error {
	if err := examineFolder(c, id); err != nil {
		return err
	}
	leaf, err := fetchLeaf(c, r.uid, r.path)
	if err != nil {
		return err
	}
	enc := strings.ToLower(leaf.Encoding)
	decode := "" // the encoding undone here, for a server without BINARY
	opts := &imap.FetchOptions{UID: true}
	switch {
	case raw || !knownEncoding(enc):
		opts.BodySection = []*imap.FetchItemBodySection{{Part: r.path, Peek: true}}
	case c.has(imap.CapBinary) || c.has(imap.CapIMAP4rev2):
		opts.BinarySection = []*imap.FetchItemBinarySection{{Part: r.path, Peek: true}}
	default:
		opts.BodySection = []*imap.FetchItemBodySection{{Part: r.path, Peek: true}}
		if enc == "base64" || enc == "quoted-printable" {
			decode = enc
		}
	}
	return r.start(c, opts, decode)
}

// openMessage selects the folder and fetches the whole message
// (BODY.PEEK[]); a message that is not there answers with no FETCH at all.
func (r *partReader) openMessage(c *conn, id backend.FolderID) error {
	if err := examineFolder(c, id); err != nil {
		return err
	}
	return r.start(c, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}, "")
}

// start sends the FETCH of opts, waits for its literal to begin and sets
// up r.out, decoding the transfer encoding decode (if not "") here.
func (r *partReader) start(c *conn, opts *imap.FetchOptions, decode string) error {
	cmd := c.client.Fetch(imap.UIDSetNum(imap.UID(r.uid)), opts)
	var lit imap.LiteralReader
	found := false
	for !found {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		for !found {
			item := msg.Next()
			if item == nil {
				break
			}
			switch item := item.(type) {
			case imapclient.FetchItemDataBinarySection:
				lit, found = item.Literal, true
			case imapclient.FetchItemDataBodySection:
				lit, found = item.Literal, true
			}
		}
	}
	if !found {
		if err := cmd.Close(); err != nil {
			if isNo(err) {
				return fmt.Errorf("%w: part %s of UID %d: %w", errServer, r.part, r.uid, err)
			}
			return fmt.Errorf("UID FETCH part %s: %w", r.part, err)
		}
		return fmt.Errorf("%w: UID %d", backend.ErrMessageNotFound, r.uid)
	}
	var src io.Reader = eofReader{}
	if lit != nil { // NIL: an empty part
		r.litSize = lit.Size()
		r.lit = &countingReader{r: lit}
		src = r.lit
	}
	r.total = r.litSize
	if decode != "" {
		src = decodeTransfer(decode, src)
		r.total = -1
	}
	if r.offset > 0 {
		if _, err := io.CopyN(io.Discard, src, r.offset); err != nil && err != io.EOF {
			// The answer is half read: close the connection rather
			// than drain it.
			abortFetch(c, cmd)
			return fmt.Errorf("UID FETCH part %s: skipping to %d: %w", r.part, r.offset, err)
		}
	}
	if r.limit > 0 {
		src = io.LimitReader(src, r.limit)
	}
	r.cmd, r.out = cmd, src
	return nil
}

// decodeTransfer undoes a Content-Transfer-Encoding on the fly with
// go-message's decoders; an encoding it does not know passes through.
func decodeTransfer(enc string, body io.Reader) io.Reader {
	var h textproto.Header
	h.Set("Content-Transfer-Encoding", enc)
	e, err := message.New(message.Header{Header: h}, body)
	if err != nil && !message.IsUnknownEncoding(err) {
		return body
	}
	return e.Body
}

// Close implements io.Closer: it gives the connection back, reading what
// is left of the answer when that is little, closing the connection when
// it is much.
func (r *partReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	if r.lit != nil && r.litSize-r.lit.n > drainMax {
		abortFetch(r.c, r.cmd)
		r.release(false)
		return nil
	}
	err := r.cmd.Close()
	r.release(err == nil || isNo(err))
	if err != nil && r.err == nil {
		return fmt.Errorf("UID FETCH part %s: %w", r.part, err)
	}
	return nil
}

// abortFetch closes c while cmd's answer is still arriving. The client's
// Close waits for its reader, which waits for the literal to be read, so
// the literal is discarded (it fails fast once the socket is closed) while
// Close runs.
func abortFetch(c *conn, cmd *imapclient.FetchCommand) {
	closed := make(chan struct{})
	go func() {
		c.close()
		close(closed)
	}()
	cmd.Close()
	<-closed
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// eofReader is an empty reader.
type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
