package mailitem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
)

// MaxDepth is how deeply multiparts are followed. Deeper parts are left
// out of the item (and reported in its warnings); a real message never
// nests this far.
const MaxDepth = 16

// maxParts bounds the number of parts one message is split into.
const maxParts = 1000

// Meta is what the IMAP server knows about a message besides its content:
// FETCH UID, FLAGS, INTERNALDATE and RFC822.SIZE.
type Meta struct {
	UID          uint32
	Flags        []string
	InternalDate time.Time
	Size         int64
}

// Part is one node of a message's MIME structure, as IMAP BODYSTRUCTURE
// describes it. Path is the IMAP section number of the part (RFC 3501
// 6.4.5): [1] for the body of a single-part message, [2 1] for the first
// child of the second part, and empty for a multipart message itself.
type Part struct {
	Path []int
	// Type and Subtype are lower case ("text", "plain").
	Type, Subtype string
	// Params are the Content-Type parameters, keys in lower case, values
	// decoded (RFC 2231 continuations and charsets, RFC 2047 words).
	Params map[string]string
	// ID is the Content-ID, Description the Content-Description.
	ID, Description string
	// Encoding is the Content-Transfer-Encoding in lower case.
	Encoding string
	// Size is the size of the body in its transfer encoding, in bytes.
	Size int64
	// Disposition is the Content-Disposition in lower case ("inline",
	// "attachment" or ""), DispositionParams its decoded parameters.
	Disposition       string
	DispositionParams map[string]string
	// Location is the Content-Location.
	Location string
	// Children are the parts of a multipart.
	Children []*Part
}

// MediaType returns "type/subtype".
func (p *Part) MediaType() string { return p.Type + "/" + p.Subtype }

// Filename returns the part's file name: the Content-Disposition filename,
// else the Content-Type name, else "".
func (p *Part) Filename() string {
	if f := p.DispositionParams["filename"]; f != "" {
		return f
	}
	return p.Params["name"]
}

// Source is where the converter reads a message from. Every method may be
// called more than once and in any order; an IMAP implementation maps them
// to FETCH items and may cache what it fetched.
type Source interface {
	// Meta returns the message's UID, flags, internal date and size.
	Meta() Meta
	// Structure returns the MIME structure (FETCH BODYSTRUCTURE; see
	// PartFromIMAP).
	Structure(ctx context.Context) (*Part, error)
	// Header returns the raw top-level header block (BODY.PEEK[HEADER]).
	Header(ctx context.Context) ([]byte, error)
	// Section returns the body of the part at path as it is stored, still
	// in its transfer encoding (BODY.PEEK[path]). With maxBytes > 0 it
	// returns at most that many bytes (BODY.PEEK[path]<0.maxBytes>) and
	// reports whether the section is longer.
	Section(ctx context.Context, path []int, maxBytes int64) (data []byte, truncated bool, err error)
	// Full returns the whole raw message (BODY.PEEK[]) and its size.
	Full(ctx context.Context) (io.ReadCloser, int64, error)
}

// SourceError is returned when the Source fails; the item could not be
// built and the caller may retry.
type SourceError struct {
	Op  string // "structure", "header", "section 1.2", "full"
	Err error
}

func (e *SourceError) Error() string { return "mailitem: read " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the Source's error.
func (e *SourceError) Unwrap() error { return e.Err }

// ErrNoSection is returned by the in-memory Source for a section path the
// message does not have.
var ErrNoSection = errors.New("mailitem: no such section")

// PathString formats a part path as IMAP writes it ("1.2"); the empty
// path is "".
func PathString(path []int) string {
	if len(path) == 1 {
		return strconv.Itoa(path[0])
	}
	var b strings.Builder
	for i, n := range path {
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// memSection is the body of the part at path, in place in the message.
type memSection struct {
	path []int
	body []byte
}

// memSource is the Source over a raw message in memory.
type memSource struct {
	meta      Meta
	raw       []byte
	headerLen int    // the header block is raw[:headerLen]
	hdr       header // the header block, parsed
	root      *Part
	sections  []memSection
	warnings  []string

	// Room for what a single-part message needs, allocated with the
	// source rather than apart: its Part, its section and its path [1].
	rootPart   Part
	oneSection [1]memSection
	onePath    [1]int
}

// FromBytes returns the Source over the raw RFC 5322 message raw. Headers
// are read with go-message's textproto reader; multiparts are split in
// place, so sections are slices of raw and nothing is copied. Malformed
// MIME never fails: what cannot be split into parts stays one part. If meta.Size is 0, len(raw) is used.
// raw must not be modified while the Source is in use.
func FromBytes(raw []byte, meta Meta) Source {
	if meta.Size == 0 {
		meta.Size = int64(len(raw))
	}
	s := &memSource{meta: meta, raw: raw}
	s.sections = s.oneSection[:0]
	hdr, body := splitHeader(raw)
	s.headerLen = len(hdr) // hdr is raw or a start of it
	s.hdr = parseHeader(hdr)
	s.root = s.parse(&s.hdr, body, nil, 0)
	return s
}

// splitHeader splits a raw entity at its first empty line. Without one,
// the whole entity is header, as IMAP servers treat it.
func splitHeader(raw []byte) (header, body []byte) {
	if len(raw) > 0 && (raw[0] == '\n' || len(raw) > 1 && raw[0] == '\r' && raw[1] == '\n') {
		if raw[0] == '\n' {
			return nil, raw[1:]
		}
		return nil, raw[2:]
	}
	for i := 0; ; {
		j := bytes.IndexByte(raw[i:], '\n')
		if j < 0 {
			return raw, nil
		}
		i += j + 1
		switch {
		case i < len(raw) && raw[i] == '\n':
			return raw[:i], raw[i+1:]
		case i+1 < len(raw) && raw[i] == '\r' && raw[i+1] == '\n':
			return raw[:i], raw[i+2:]
		}
	}
}

// splitMultipart returns the body parts of a multipart entity (RFC 2046
// 5.1.1) as slices of body, without copying: each part runs from the line
// after a delimiter line "--boundary" to the line break before the next
// one. closed reports whether the close delimiter "--boundary--" was
// found; without it the last part runs to the end of the body.
func splitMultipart(body []byte, boundary string) (parts [][]byte, closed bool) {
	delim := []byte("--" + boundary)
	start := -1 // start of the current part, -1 before the first delimiter
	for pos := 0; pos <= len(body); {
		i := bytes.Index(body[pos:], delim)
		if i < 0 {
			break
		}
		d := pos + i
		pos = d + len(delim)
		if d > 0 && body[d-1] != '\n' {
			continue // not at the start of a line
		}
		rest := body[pos:]
		isClose := bytes.HasPrefix(rest, []byte("--"))
		if isClose {
			rest = rest[2:]
		}
		// Transport padding, then the end of the line (or of the body).
		j := 0
		for j < len(rest) && (rest[j] == ' ' || rest[j] == '\t') {
			j++
		}
		lineEnd := -1
		switch {
		case j == len(rest):
			lineEnd = len(body)
		case rest[j] == '\n':
			lineEnd = len(body) - len(rest) + j + 1
		case rest[j] == '\r' && j+1 < len(rest) && rest[j+1] == '\n':
			lineEnd = len(body) - len(rest) + j + 2
		case isClose:
			lineEnd = len(body) - len(rest) + j // "--b--junk" still closes
		}
		if lineEnd < 0 {
			continue // a longer line that starts with the boundary
		}
		if start >= 0 {
			end := d
			if end > start && body[end-1] == '\n' {
				end--
				if end > start && body[end-1] == '\r' {
					end--
				}
			}
			parts = append(parts, body[start:max(end, start)])
		}
		if isClose {
			return parts, true
		}
		start, pos = lineEnd, lineEnd
	}
	if start >= 0 {
		parts = append(parts, body[start:])
	}
	return parts, false
}

// header is a parsed header block: where its fields are, as offsets
// into the block, looked up by name when a value is needed. It gives what
// go-message's textproto.ReadHeader and Header.Get give — the same
// fields, the first of a name, values unfolded and trimmed the same way
// (tested against them on random blocks) — without a map, a canonical
// key and a value string per field, which were most of what parsing a
// message allocated.
type header struct {
	block  []byte
	fields []fieldPos
	// names has the nameBit of every field's name set: most names asked
	// for are of fields a message does not have, and nameBit tells
	// without looking at them.
	names uint64
}

// nameBit is a bit for a field name of length n that starts with first
// and ends with last, the same whatever the ASCII case of the name.
func nameBit(n int, first, last byte) uint64 {
	return 1 << ((uint(n)*7 + uint(first|0x20)*3 + uint(last|0x20)) & 63)
}

// fieldPos is one field of a header block: its name is
// block[keyStart:keyEnd] (trimmed), its raw value block[valStart:end]
// (with folding and the line break).
type fieldPos struct {
	keyStart, keyEnd, valStart, end int32
}

// parseHeader parses a header block leniently, as
// textproto.ReadHeader does: at the first malformed line (one without a
// colon or with a bad key) the fields before it are kept, and a block
// that starts with a continuation line has no fields. b must not be
// modified while the header is in use.
func parseHeader(b []byte) header {
	var buf [32]fieldPos
	block, fields, names := parseHeaderTo(b, buf[:0])
	return header{block: block, fields: slices.Clone(fields), names: names}
}

// parseHeaderTo is parseHeader appending the fields to fields, for a
// header that does not outlive the caller's buffer: header{block,
// fields, names} is the header.
func parseHeaderTo(b []byte, fields []fieldPos) (block []byte, _ []fieldPos, names uint64) {
	if len(b) == 0 || b[0] == ' ' || b[0] == '\t' || len(b) > math.MaxInt32-2 {
		return nil, nil, 0
	}
	if b[len(b)-1] != '\n' {
		// The last line ends with the block (a message that is all
		// header): end it as ReadHeader's reader does.
		b = append(slices.Clip(b), '\r', '\n')
	}
	for pos := 0; pos < len(b); {
		end := lineEnd(b, pos)
		if isBlankLine(b[pos:end]) {
			break // the empty line that ends the header
		}
		for end < len(b) && (b[end] == ' ' || b[end] == '\t') {
			end = lineEnd(b, end) // folded: continuation lines
		}
		colon := bytes.IndexByte(b[pos:end], ':')
		if colon < 0 {
			break
		}
		colon += pos
		ks, ke := pos, colon
		for ks < ke && (b[ks] == ' ' || b[ks] == '\t') {
			ks++
		}
		for ke > ks && (b[ke-1] == ' ' || b[ke-1] == '\t') {
			ke--
		}
		for _, c := range b[ks:ke] {
			if c < '!' || c > '~' {
				return b, fields, names
			}
		}
		if ke > ks {
			fields = append(fields, fieldPos{int32(ks), int32(ke), int32(colon + 1), int32(end)})
			names |= nameBit(ke-ks, b[ks], b[ke-1])
		}
		pos = end
	}
	return b, fields, names
}

// Get returns the value of the first field named name (compared without
// regard to ASCII case, as canonical MIME keys are), unfolded: its lines
// trimmed of spaces and tabs and joined by one space. "" when there is
// none. name must be a valid field name (letters, digits, "-").
func (h *header) Get(name string) string {
	if h.names&nameBit(len(name), name[0], name[len(name)-1]) == 0 {
		return ""
	}
	for _, f := range h.fields {
		if int(f.keyEnd-f.keyStart) == len(name) && equalFoldASCII(h.block[f.keyStart:f.keyEnd], name) {
			return unfold(h.block[f.valStart:f.end])
		}
	}
	return ""
}

// equalFoldASCII reports whether b and s, of the same length, are equal
// in ASCII letters without regard to case.
func equalFoldASCII[T string | []byte](b T, s string) bool {
	for i := range len(b) {
		c, d := b[i], s[i]
		if c == d {
			continue
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if 'A' <= d && d <= 'Z' {
			d += 'a' - 'A'
		}
		if c != d {
			return false
		}
	}
	return true
}

// unfold joins the lines of a raw field value: each without its line
// break (one CR before the LF) and trimmed of spaces and tabs, the
// empty ones left out, the rest joined by one space.
func unfold(v []byte) string {
	if i := bytes.IndexByte(v, '\n'); i < 0 || i == len(v)-1 {
		return string(trimLine(v)) // one line: the common case
	}
	var b strings.Builder
	b.Grow(len(v))
	for len(v) > 0 {
		line := v
		if i := bytes.IndexByte(v, '\n'); i >= 0 {
			line, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		if line = trimLine(line); len(line) > 0 {
			if b.Len() > 0 {
				b.WriteByte(' ')
			}
			b.Write(line)
		}
	}
	return b.String()
}

// trimLine removes a line's break (LF, and one CR before it) and the
// spaces and tabs around what is left.
func trimLine(l []byte) []byte {
	if len(l) > 0 && l[len(l)-1] == '\n' {
		l = l[:len(l)-1]
	}
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	for len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
		l = l[1:]
	}
	for len(l) > 0 && (l[len(l)-1] == ' ' || l[len(l)-1] == '\t') {
		l = l[:len(l)-1]
	}
	return l
}

// lineEnd returns the index just past the line break of the line that
// starts at i in b, or len(b).
func lineEnd(b []byte, i int) int {
	if j := bytes.IndexByte(b[i:], '\n'); j >= 0 {
		return i + j + 1
	}
	return len(b)
}

// isBlankLine reports whether line (with its line break) is empty.
func isBlankLine(line []byte) bool {
	return len(line) == 0 || line[0] == '\n' || len(line) >= 2 && line[0] == '\r' && line[1] == '\n'
}

// parse builds the part for one entity with header h and body. path is
// the entity's own section path (nil for the message itself).
func (s *memSource) parse(h *header, body []byte, path []int, depth int) *Part {
	p := &s.rootPart
	if path != nil {
		p = new(Part)
	}
	partFromHeader(p, h)
	p.Size = int64(len(body))
	if p.Type != "multipart" {
		if path == nil {
			path = s.onePath[:]
			path[0] = 1
		}
		p.Path = path
		s.sections = append(s.sections, memSection{path, body})
		return p
	}
	p.Path = path
	boundary := p.Params["boundary"]
	if boundary == "" || depth >= MaxDepth || len(s.sections) >= maxParts {
		if depth >= MaxDepth {
			s.warnings = append(s.warnings, fmt.Sprintf("multipart nested deeper than %d: inner parts left out", MaxDepth))
		}
		// Keep it as an opaque leaf so the item still has something.
		p.Type, p.Subtype = "application", "octet-stream"
		if path == nil {
			path = []int{1}
		}
		p.Path = path
		s.sections = append(s.sections, memSection{path, body})
		return p
	}
	parts, closed := splitMultipart(body, boundary)
	// A part's header is only read to make its Part: it and its fields
	// live here, declared out of the loop to stay on the stack.
	var (
		buf [32]fieldPos
		ch  header
	)
	if !closed && len(parts) > 0 {
		s.warnings = append(s.warnings, "multipart without its closing boundary")
	}
	for i, part := range parts {
		if len(s.sections) >= maxParts {
			s.warnings = append(s.warnings, fmt.Sprintf("more than %d parts: the rest left out", maxParts))
			break
		}
		ph, pb := splitHeader(part)
		block, fields, names := parseHeaderTo(ph, buf[:0])
		ch = header{block: block, fields: fields, names: names}
		child := s.parse(&ch, pb, append(slices.Clip(path), i+1), depth+1)
		p.Children = append(p.Children, child)
	}
	if len(p.Children) == 0 {
		// No part was found: show the body as text rather than nothing.
		s.warnings = append(s.warnings, "multipart without parts: body shown as text")
		p.Type, p.Subtype, p.Params = "text", "plain", nil
		if path == nil {
			path = []int{1}
		}
		p.Path = path
		s.sections = append(s.sections, memSection{path, body})
	}
	return p
}

// partFromHeader sets p, a new (zero) Part, from the MIME fields of h.
func partFromHeader(p *Part, h *header) {
	p.Type, p.Subtype = "text", "plain"
	ct, params := parseParamField(h.Get("Content-Type"))
	if t, st, ok := strings.Cut(ct, "/"); ok && t != "" && st != "" {
		p.Type, p.Subtype = t, st
	}
	p.Params = params
	p.ID = strings.TrimSpace(h.Get("Content-Id"))
	p.Description = decodeText(h.Get("Content-Description"))
	p.Encoding = strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	p.Disposition, p.DispositionParams = parseParamField(h.Get("Content-Disposition"))
	p.Location = strings.TrimSpace(h.Get("Content-Location"))
}

func (s *memSource) Meta() Meta { return s.meta }

// Warnings returns what FromBytes found wrong in the MIME structure.
func (s *memSource) Warnings() []string { return s.warnings }

func (s *memSource) Structure(context.Context) (*Part, error) { return s.root, nil }

func (s *memSource) Header(context.Context) ([]byte, error) {
	if s.headerLen == 0 {
		return nil, nil
	}
	return s.raw[:s.headerLen], nil
}

// parsedHeader returns the header FromBytes already parsed, so Build does
// not parse it again.
func (s *memSource) parsedHeader() header { return s.hdr }

func (s *memSource) Section(_ context.Context, path []int, maxBytes int64) ([]byte, bool, error) {
	i := slices.IndexFunc(s.sections, func(m memSection) bool { return slices.Equal(m.path, path) })
	if i < 0 {
		return nil, false, fmt.Errorf("%w: %q", ErrNoSection, PathString(path))
	}
	b := s.sections[i].body
	if maxBytes > 0 && int64(len(b)) > maxBytes {
		return b[:maxBytes], true, nil
	}
	return b, false, nil
}

func (s *memSource) Full(context.Context) (io.ReadCloser, int64, error) {
	return io.NopCloser(bytes.NewReader(s.raw)), int64(len(s.raw)), nil
}

// PartFromIMAP converts a go-imap BODYSTRUCTURE into a Part tree, so that
// an IMAP-backed Source can answer Structure. Parameters are decoded the
// same way FromBytes decodes them. A message/rfc822 part is a leaf.
func PartFromIMAP(bs imap.BodyStructure) *Part {
	if bs == nil {
		return &Part{Type: "text", Subtype: "plain", Path: []int{1}}
	}
	if mp, ok := bs.(*imap.BodyStructureMultiPart); ok {
		return partFromIMAP(mp, nil, 0)
	}
	return partFromIMAP(bs, []int{1}, 0)
}

func partFromIMAP(bs imap.BodyStructure, path []int, depth int) *Part {
	switch bs := bs.(type) {
	case *imap.BodyStructureMultiPart:
		p := &Part{Path: path, Type: "multipart", Subtype: strings.ToLower(bs.Subtype)}
		if bs.Extended != nil {
			p.Params = decodeParams(bs.Extended.Params)
			if d := bs.Extended.Disposition; d != nil {
				p.Disposition = strings.ToLower(d.Value)
				p.DispositionParams = decodeParams(d.Params)
			}
			p.Location = bs.Extended.Location
		}
		if depth >= MaxDepth {
			p.Type, p.Subtype = "application", "octet-stream"
			return p
		}
		for i, c := range bs.Children {
			p.Children = append(p.Children, partFromIMAP(c, append(slices.Clip(path), i+1), depth+1))
		}
		return p
	case *imap.BodyStructureSinglePart:
		p := &Part{
			Path:        path,
			Type:        strings.ToLower(bs.Type),
			Subtype:     strings.ToLower(bs.Subtype),
			Params:      decodeParams(bs.Params),
			ID:          bs.ID,
			Description: decodeText(bs.Description),
			Encoding:    strings.ToLower(bs.Encoding),
			Size:        int64(bs.Size),
		}
		if bs.Extended != nil {
			if d := bs.Extended.Disposition; d != nil {
				p.Disposition = strings.ToLower(d.Value)
				p.DispositionParams = decodeParams(d.Params)
			}
			p.Location = bs.Extended.Location
		}
		return p
	}
	return &Part{Path: path, Type: "application", Subtype: "octet-stream"}
}
