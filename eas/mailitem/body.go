package mailitem

import (
	"bytes"
	"io"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/easgate/easgate/wbxml"
)

// layout is what a message's structure is made of: the parts that hold
// its text and HTML body, and the attachments.
type layout struct {
	plain, html *Part
	atts        []*Part
	tooDeep     bool
}

func (l *layout) hasBody() bool { return l.plain != nil || l.html != nil }

// nativeType is airsyncbase:NativeBodyType: HTML when there is an HTML
// body, else plain text.
func (l *layout) nativeType() BodyType {
	if l.html != nil {
		return BodyHTML
	}
	return BodyPlain
}

// isAttachment reports whether a leaf text part is meant as a file rather
// than as the message's text.
func isAttachment(p *Part) bool {
	return p.Disposition == "attachment" || p.Filename() != ""
}

// collect sorts the parts under p into body and attachments, as mail
// readers do: the first inline text part is the body; in a
// multipart/alternative the last text/plain and the last text/html are the
// two forms of it; in a multipart/related the root holds the body and the
// other parts are (usually inline) attachments; in a multipart/signed the
// first part is the content and the signature an attachment.
func (l *layout) collect(p *Part, depth int) {
	if depth > MaxDepth {
		l.tooDeep = true
		return
	}
	if p.Type != "multipart" {
		switch {
		case p.Type == "text" && (p.Subtype == "plain" || p.Subtype == "html") && !isAttachment(p) && !l.hasBody():
			if p.Subtype == "plain" {
				l.plain = p
			} else {
				l.html = p
			}
		default:
			l.atts = append(l.atts, p)
		}
		return
	}
	switch p.Subtype {
	case "alternative":
		if l.hasBody() {
			for _, c := range p.Children {
				l.collect(c, depth+1)
			}
			return
		}
		var alt, sub layout // out of the loop: on the stack
		for _, c := range p.Children {
			sub = layout{}
			sub.collect(c, depth+1)
			if sub.plain != nil {
				alt.plain = sub.plain
			}
			if sub.html != nil {
				alt.html = sub.html
			}
			l.atts = append(l.atts, sub.atts...)
			l.tooDeep = l.tooDeep || sub.tooDeep
		}
		l.plain, l.html = alt.plain, alt.html
	case "related":
		root := 0
		if start := strings.Trim(p.Params["start"], "<> "); start != "" {
			for i, c := range p.Children {
				if strings.Trim(c.ID, "<> ") == start {
					root = i
				}
			}
		}
		if root < len(p.Children) {
			l.collect(p.Children[root], depth+1)
		}
		for i, c := range p.Children {
			if i != root {
				l.collect(c, depth+1)
			}
		}
	default: // mixed, signed, report, digest and unknown kinds
		for _, c := range p.Children {
			l.collect(c, depth+1)
		}
	}
}

// isSMIMEData reports whether p is an S/MIME encrypted or opaque-signed
// body (RFC 8551 3.2).
func isSMIMEData(p *Part) bool {
	if p.Type != "application" { // compared apart: no "type/subtype" string made
		return false
	}
	switch p.Subtype {
	case "pkcs7-mime", "x-pkcs7-mime":
		return true
	case "octet-stream":
		return strings.HasSuffix(strings.ToLower(p.Filename()), ".p7m")
	}
	return false
}

// messageClass is email:MessageClass from the top-level structure.
func messageClass(root *Part) string {
	switch {
	case root.Type == "multipart" && root.Subtype == "signed":
		proto := strings.ToLower(root.Params["protocol"])
		if strings.Contains(proto, "pkcs7-signature") {
			return ClassSMIMEMultipartSigned
		}
	case isSMIMEData(root):
		return ClassSMIME
	}
	return ClassNote
}

// choosePreference picks the body to send (digest 4.1 "Which body to
// send"): MIME when MIMESupport says so, else the first preference that
// can be produced (RTF cannot), else the whole plain text. class is the
// message's email:MessageClass.
func choosePreference(opts *Options, class string) BodyPreference {
	prefs := opts.BodyPreferences
	smime := class != ClassNote
	if opts.MIMESupport == MIMEAlways || opts.MIMESupport == MIMESMIMEOnly && smime {
		for _, p := range prefs {
			if p.Type == BodyMIME {
				return p
			}
		}
		return BodyPreference{Type: BodyMIME, TruncationSize: opts.MIMETruncation.TruncationSize, AllOrNone: opts.MIMETruncation.AllOrNone}
	}
	for _, p := range prefs {
		switch p.Type {
		case BodyPlain, BodyHTML, BodyMIME:
			return p
		}
	}
	return BodyPreference{Type: BodyPlain}
}

// BodyLimit is the most body bytes an item built with o carries: the
// TruncationSize of the body preference it is built with, or 0 when that
// may be the whole body (no TruncationSize, no preference, or a whole MIME
// message). Callers use it to foresee how large a batch of items gets.
func (o *Options) BodyLimit() int64 {
	var limit int64
	for _, class := range []string{ClassNote, ClassSMIME} {
		t := choosePreference(o, class).TruncationSize
		if t <= 0 {
			return 0
		}
		limit = max(limit, t)
	}
	return limit
}

// previewRender says whether the Preview (MS-ASAIRS 2.2.2.37, 14.0+) is
// rendered apart from the body: always when the body is not plain text,
// and for an all-or-nothing plain body that turns out truncated (so has
// no data). certain is false in the second case, which depends on the
// text.
func previewRender(pref BodyPreference, ver int) (maybe, certain bool) {
	if pref.Preview <= 0 || ver < 140 {
		return false, false
	}
	if pref.Type != BodyPlain {
		return true, true
	}
	return pref.AllOrNone && pref.TruncationSize > 0, false
}

// bodyContent is what airsyncbase:Body (MS-ASAIRS 2.2.2.9) says.
type bodyContent struct {
	pref    BodyPreference // the preference it is made for
	r       rendered
	preview string
	// hasPreview is set when there is a Preview (preview may be empty).
	hasPreview bool
}

// renderBody renders the body and its Preview for the options.
func (b *builder) renderBody() (bodyContent, error) {
	pref := choosePreference(&b.opts, b.class)
	r, err := b.render(pref.Type, pref.TruncationSize)
	if err != nil {
		return bodyContent{}, err
	}
	c := bodyContent{pref: pref, r: r}
	if pref.Preview > 0 && b.ver >= 140 {
		text := r.data
		if maybe, certain := previewRender(pref, b.ver); certain || maybe && r.truncated {
			p, err := b.render(BodyPlain, previewBytes)
			if err != nil {
				return bodyContent{}, err
			}
			text = p.data
		}
		c.preview, c.hasPreview = makePreview(text, pref.Preview), true
	}
	return c, nil
}

// hasData reports whether the body carries its Data: not when it is
// truncated and the phone asked for all or none.
func (c *bodyContent) hasData() bool { return !(c.r.truncated && c.pref.AllOrNone) }

// elements is the number of elements bodyElement makes: Body, Type,
// EstimatedDataSize, Truncated, and Data and Preview when there.
func (c *bodyContent) elements() int {
	n := 4
	if c.hasData() {
		n++
	}
	if c.hasPreview {
		n++
	}
	return n
}

// bodyElement is airsyncbase:Body holding c.
func (b *builder) bodyElement(c *bodyContent) *wbxml.Element {
	body := b.el.parent(wbxml.AirSyncBaseBody, c.elements()-1)
	body.Add(b.el.t(wbxml.AirSyncBaseType, strconv.Itoa(int(c.pref.Type))),
		b.el.t(wbxml.AirSyncBaseEstimatedDataSize, strconv.FormatInt(min(c.r.full, 1<<32-1), 10)),
		b.el.t(wbxml.AirSyncBaseTruncated, boolText(c.r.truncated)))
	if c.hasData() {
		body.Add(b.el.t(wbxml.AirSyncBaseData, c.r.data))
	}
	if c.hasPreview {
		body.Add(b.el.t(wbxml.AirSyncBasePreview, c.preview))
	}
	return body
}

// previewBytes is how much plain text is rendered to make a preview of at
// most 255 characters, even after white space is collapsed.
const previewBytes = 4096

// rendered is a body in one type.
type rendered struct {
	data      string
	full      int64 // size of the whole body in this type, estimated when not all was read
	truncated bool
}

// slack is how many bytes past the truncation point a partial section
// must give before its conversion is trusted: the end of a cut-short
// section may hold half a character, entity or tag.
const slack = 64

// render produces the body in type typ, cut to limit bytes when limit > 0.
func (b *builder) render(typ BodyType, limit int64) (rendered, error) {
	if typ == BodyMIME {
		return b.renderMIME(limit)
	}
	src, conv, window := b.lay.textRead(typ, limit)
	if src == nil {
		return rendered{}, nil
	}
	for {
		raw, more, err := b.section(src, window)
		if err != nil {
			return rendered{}, err
		}
		more = more && window > 0 // a whole read has nothing more
		// decode may give a view of the message's bytes: only the part
		// of it that is sent is copied (strings.Clone), where copying
		// the whole text to cut most of it off was a tenth of what
		// building a window allocated.
		out := conv(b.decode(src, raw))
		n := int64(len(out))
		switch {
		case !more:
			if limit > 0 && n > limit {
				return rendered{data: strings.Clone(truncateUTF8(out, int(limit))), full: n, truncated: true}, nil
			}
			return rendered{data: strings.Clone(out), full: n}, nil
		case n > limit+slack:
			// Estimate the whole from the share read so far.
			full := n
			if len(raw) > 0 && src.Size > int64(len(raw)) {
				full = int64(float64(n) * float64(src.Size) / float64(len(raw)))
			}
			return rendered{data: strings.Clone(truncateUTF8(out, int(limit))), full: max(full, n), truncated: true}, nil
		}
		window = readWindow(src, window*4)
	}
}

// textRead says which part render converts for a body of type typ cut at
// limit (> 0) bytes, how, and how much of the part its first read asks
// for (0: all of it). Plan and render both use it.
func (l *layout) textRead(typ BodyType, limit int64) (src *Part, conv func(string) string, window int64) {
	src, conv = l.plain, textIdentity
	switch {
	case typ == BodyPlain && src == nil:
		src, conv = l.html, htmlToText
	case typ == BodyHTML:
		src, conv = l.html, textIdentity
		if src == nil {
			src, conv = l.plain, textToHTML
		}
	}
	if src == nil {
		return nil, nil, 0
	}
	if limit > 0 {
		// Transfer encoding and charsets rarely take more than 3 bytes
		// per byte of text, HTML markup rarely more than 8.
		window = limit*3 + 1024
		if src.Subtype == "html" && typ == BodyPlain {
			window = limit*8 + 8192
		}
	}
	return src, conv, readWindow(src, window)
}

// readWindow is a read of window bytes of p, or 0 (all of it) when that
// covers the part anyway.
func readWindow(p *Part, window int64) int64 {
	if window > 0 && p.Size > 0 && window >= p.Size {
		return 0
	}
	return window
}

func textIdentity(s string) string { return s }

// decode turns a section's raw bytes into UTF-8 text XML can carry. The
// text may share memory with raw (nothing is copied when raw is UTF-8 in
// an identity transfer encoding): it must not outlive the build, and raw
// must not change meanwhile (render copies what it keeps).
func (b *builder) decode(p *Part, raw []byte) string {
	data := decodeTransfer(raw, p.Encoding)
	cs := p.Params["charset"]
	if cs == "" && p.Subtype == "html" {
		cs = sniffHTMLCharset(data)
	}
	utf := toUTF8(data, cs)
	text := sanitize(unsafe.String(unsafe.SliceData(utf), len(utf)))
	if p.Subtype == "html" {
		text = fixMetaCharset(text)
	}
	return text
}

// section reads the body of p, at most window bytes when window > 0,
// reusing what was read before when it is enough.
func (b *builder) section(p *Part, window int64) ([]byte, bool, error) {
	c := slices.IndexFunc(b.cache[:min(b.cached, len(b.cache))], func(s section) bool { return slices.Equal(s.path, p.Path) })
	if c >= 0 {
		s := b.cache[c]
		switch {
		case !s.more && (window == 0 || int64(len(s.data)) <= window):
			return s.data, false, nil
		case window > 0 && int64(len(s.data)) >= window:
			return s.data[:window], true, nil
		}
	}
	data, more, err := b.src.Section(b.ctx, p.Path, window)
	if err != nil {
		return nil, false, &SourceError{Op: "section " + PathString(p.Path), Err: err}
	}
	if c < 0 {
		// A new part: in the slot of the one read longest ago.
		c = b.cached % len(b.cache)
		b.cached++
	}
	b.cache[c] = section{path: p.Path, data: data, more: more}
	return data, more, nil
}

// renderMIME reads the whole message as the Type 4 body.
func (b *builder) renderMIME(limit int64) (rendered, error) {
	rc, size, err := b.src.Full(b.ctx)
	if err != nil {
		return rendered{}, &SourceError{Op: "full", Err: err}
	}
	defer rc.Close()
	var r io.Reader = rc
	want := size
	if n := mimeRead(limit); n > 0 {
		r = io.LimitReader(rc, n)
		want = min(want, n)
	}
	buf := bytes.NewBuffer(make([]byte, 0, max(0, min(want, 64<<20))+bytes.MinRead))
	if _, err := buf.ReadFrom(r); err != nil {
		return rendered{}, &SourceError{Op: "full", Err: err}
	}
	raw := buf.Bytes()
	if size < int64(len(raw)) {
		size = int64(len(raw))
	}
	data := sanitize(string(raw))
	full := max(size, int64(len(data)))
	if limit > 0 && int64(len(data)) > limit {
		return rendered{data: truncateUTF8(data, int(limit)), full: full, truncated: true}, nil
	}
	return rendered{data: data, full: full}, nil
}

// mimeRead is how much of the whole message renderMIME reads for a body
// cut at limit bytes (0: all of it): slack more, so that sanitizing what
// is cut cannot leave it short.
func mimeRead(limit int64) int64 {
	if limit > 0 {
		return limit + slack
	}
	return 0
}

// attachments is airsyncbase:Attachments (MS-ASAIRS 2.2.2.8); the
// message has some.
func (b *builder) attachments() *wbxml.Element {
	atts := b.el.parent(wbxml.AirSyncBaseAttachments, len(b.lay.atts))
	for _, p := range b.lay.atts {
		name, ref := attachmentName(p), b.opts.fileRef(p.Path)
		cid, loc := contentID(p), cleanText(p.Location)
		a := b.el.parent(wbxml.AirSyncBaseAttachment, attachmentElements(cid, loc)-1)
		a.Add(b.el.t(wbxml.AirSyncBaseDisplayName, name),
			b.el.t(wbxml.AirSyncBaseFileReference, ref),
			b.el.t(wbxml.AirSyncBaseMethod, "1"),
			b.el.t(wbxml.AirSyncBaseEstimatedDataSize, strconv.FormatInt(min(decodedSize(p), 1<<32-1), 10)),
			b.el.opt(wbxml.AirSyncBaseContentId, cid),
			b.el.opt(wbxml.AirSyncBaseContentLocation, loc),
			b.el.t(wbxml.AirSyncBaseIsInline, boolText(cid != "" && p.Disposition != "attachment")))
		atts.Add(a)
	}
	return atts
}

// attachmentElements is the number of elements attachments makes.
func (b *builder) attachmentElements() int {
	n := 1
	for _, p := range b.lay.atts {
		n += attachmentElements(contentID(p), cleanText(p.Location))
	}
	return n
}

// attachmentElements is the number of elements of one Attachment with
// ContentId cid and ContentLocation loc: itself, DisplayName,
// FileReference, Method, EstimatedDataSize, IsInline and those two when
// not empty.
func attachmentElements(cid, loc string) int {
	n := 6
	if cid != "" {
		n++
	}
	if loc != "" {
		n++
	}
	return n
}

// contentID is an attachment's airsyncbase:ContentId: its Content-ID
// without brackets.
func contentID(p *Part) string {
	return cleanText(strings.Trim(strings.TrimSpace(p.ID), "<>"))
}

// decodedSize estimates the size of p once its transfer encoding is
// undone: base64 lines are 76 characters and CRLF, 4 characters for 3 bytes.
func decodedSize(p *Part) int64 {
	if p.Encoding == "base64" {
		return (p.Size - 2*(p.Size/78)) * 3 / 4
	}
	return p.Size
}

// extensions gives a file name extension to unnamed parts.
var extensions = map[string]string{
	"text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics",
	"message/rfc822": ".eml", "image/jpeg": ".jpg", "image/png": ".png",
	"image/gif": ".gif", "application/pdf": ".pdf", "text/rfc822-headers": ".txt",
	"message/delivery-status": ".txt", "message/disposition-notification": ".txt",
}

// attachmentName is the attachment's file name, or one made from its
// description or its type and section.
func attachmentName(p *Part) string {
	if f := cleanText(p.Filename()); f != "" {
		return f
	}
	switch p.MediaType() {
	case "application/pkcs7-signature", "application/x-pkcs7-signature":
		return "smime.p7s"
	case "application/pkcs7-mime", "application/x-pkcs7-mime":
		return "smime.p7m"
	case "text/calendar":
		return "invite.ics"
	}
	ext := extensions[p.MediaType()]
	if d := cleanText(p.Description); d != "" {
		return d + ext
	}
	return "part-" + PathString(p.Path) + ext
}
