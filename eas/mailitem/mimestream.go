package mailitem

import (
	"context"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/easgate/easgate/wbxml"
)

// A MIME body (MS-ASAIRS 2.2.2.22.1, Type 4) without a TruncationSize is
// the whole message, which may be tens of megabytes. Build reads it into
// memory (Source.Full); BuildStreamed leaves it out of the item instead,
// for the caller to copy from the mail server straight into its response
// with MIMEBody.Copy, which makes the bytes XML-safe exactly as Build
// does. A truncated MIME body is bounded by its TruncationSize and stays
// with Build.

// MIMEBody is the whole-message MIME body of an item made by
// BuildStreamed, still without its data. Copy fills in what depends on
// the data (EstimatedDataSize); the caller writes the data itself, as
// the text of Data or as a multipart part (UsePart).
type MIMEBody struct {
	body     *wbxml.Element // airsyncbase:Body
	estimate *wbxml.Element // airsyncbase:EstimatedDataSize
	data     *wbxml.Element // airsyncbase:Data
	stored   int64          // the message's size as the Source's Meta says
}

// BuildStreamed is Build for a caller that streams a MIME body itself
// (an ItemOperations Fetch, MS-ASCMD 2.2.3.69.1): when the options ask
// for the whole message as the body (Type 4 without TruncationSize, see
// PlanReads), it builds the item without calling src.Full and returns the
// body to fill in as a *MIMEBody. The item is then as Build makes it,
// except that the body's Data is empty and its EstimatedDataSize 0 until
// MIMEBody.Copy has run. For any other body the MIMEBody is nil and the
// item is Build's.
func BuildStreamed(ctx context.Context, src Source, opts Options) (*Item, *MIMEBody, error) {
	root, err := src.Structure(ctx)
	if err != nil {
		return nil, nil, &SourceError{Op: "structure", Err: err}
	}
	if plan := PlanReads(root, opts); !plan.Full || plan.FullMax > 0 {
		it, err := Build(ctx, src, opts)
		return it, nil, err
	}
	it, err := Build(ctx, deferredFull{src}, opts)
	if err != nil {
		return nil, nil, err
	}
	m := &MIMEBody{stored: src.Meta().Size, body: it.ApplicationData.Child(wbxml.AirSyncBaseBody)}
	if m.body != nil {
		m.estimate = m.body.Child(wbxml.AirSyncBaseEstimatedDataSize)
		m.data = m.body.Child(wbxml.AirSyncBaseData)
	}
	if it.BodyType != BodyMIME || m.estimate == nil || m.data == nil {
		// PlanReads and Build disagree, which their tests rule out:
		// build the item the ordinary way rather than send it without
		// its body.
		it, err := Build(ctx, src, opts)
		return it, nil, err
	}
	return it, m, nil
}

// deferredFull is a Source whose whole message is empty: Build then makes
// a MIME body without data, which BuildStreamed hands to its caller.
type deferredFull struct{ Source }

func (deferredFull) Full(context.Context) (io.ReadCloser, int64, error) {
	return io.NopCloser(strings.NewReader("")), 0, nil
}

// Warnings passes on the Source's warnings (see WarningSource).
func (d deferredFull) Warnings() []string {
	if ws, ok := d.Source.(WarningSource); ok {
		return ws.Warnings()
	}
	return nil
}

// Element returns the airsyncbase:Body element, the one in the item.
func (m *MIMEBody) Element() *wbxml.Element { return m.body }

// Data returns the body's airsyncbase:Data element. Its text stays empty:
// the caller writes what Copy wrote as its content (Encoder.TextFrom).
// An element left empty encodes as <Data/>, as Build's does for an empty
// message.
func (m *MIMEBody) Data() *wbxml.Element { return m.data }

// UsePart replaces the body's Data by itemoperations:Part n, the index of
// the multipart response part (MS-ASCMD 2.2.2.9.1.1) that carries the
// data instead; Part comes last in the body (AirSyncBase.xsd).
func (m *MIMEBody) UsePart(n int) {
	kept := m.body.Children[:0]
	for _, c := range m.body.Children {
		if c != m.data {
			kept = append(kept, c)
		}
	}
	m.body.Children = append(kept, wbxml.T(wbxml.ItemOperationsPart, strconv.Itoa(n)))
	m.data = nil
}

// mimeChunk is how much of the message Copy reads at a time.
const mimeChunk = 32 << 10

// Copy reads the whole raw message from r (what Source.Full would yield)
// and writes it to w made XML-safe as Build makes a MIME body (invalid
// UTF-8, U+FFFE and U+FFFF become U+FFFD; C0 controls other than tab, CR
// and LF are dropped; line ends and everything else are kept), then sets
// the body's EstimatedDataSize as Build does: the largest of the stored
// size, the bytes read and the bytes written. The stored size is the one
// the Source's Meta gave, where Build takes the one Source.Full gives:
// the same for FromBytes (unless given another Meta.Size) and for the
// IMAP Source of eas/mailsync (RFC822.SIZE). It holds
// only a small buffer, however long the message. It returns the number
// of bytes written: the body's data. Errors from r are returned as
// *SourceError, those of w as they are.
func (m *MIMEBody) Copy(w io.Writer, r io.Reader) (int64, error) {
	in := make([]byte, mimeChunk)
	// Each byte read becomes at most three (U+FFFD).
	out := make([]byte, 0, 3*mimeChunk)
	var read, written int64
	pending := 0 // bytes of in not yet converted: a character cut by the read
	empty := 0
	for {
		n, rerr := r.Read(in[pending:])
		read += int64(n)
		pending += n
		switch {
		case rerr == io.EOF:
		case rerr != nil:
			return written, &SourceError{Op: "full", Err: rerr}
		case n == 0:
			if empty++; empty >= 100 {
				return written, &SourceError{Op: "full", Err: io.ErrNoProgress}
			}
			continue
		default:
			empty = 0
		}
		final := rerr == io.EOF
		var used int
		out, used = appendXMLSafe(out[:0], in[:pending], final)
		pending = copy(in, in[used:pending])
		if len(out) > 0 {
			k, err := w.Write(out)
			written += int64(k)
			if err != nil {
				return written, err
			}
		}
		if final {
			break
		}
	}
	m.estimate.Text = strconv.FormatInt(min(max(m.stored, read, written), 1<<32-1), 10)
	return written, nil
}

// appendXMLSafe appends b to dst as sanitize converts it and returns how
// many bytes of b it used: all of them when final, else all but the
// start of a character cut off at the end (at most three bytes), which
// the caller passes again with what follows.
func appendXMLSafe(dst, b []byte, final bool) ([]byte, int) {
	start := 0 // start of the run of bytes kept as they are
	i := 0
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				dst = append(dst, b[start:i]...)
				start = i + 1
			}
			i++
			continue
		}
		if !final && !utf8.FullRune(b[i:]) {
			break
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
			dst = append(dst, b[start:i]...)
			dst = utf8.AppendRune(dst, utf8.RuneError)
			start = i + n
		}
		i += n
	}
	return append(dst, b[start:i]...), i
}
