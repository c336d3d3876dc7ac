package mailitem

import "slices"

// Plan is what Build reads from a Source for one message before anything
// it read can change its mind. A caller that converts many messages (a
// Sync window of up to 512 Adds, MS-ASCMD 2.2.3.199) reads the plans'
// parts for all of them at once and serves Build from memory.
//
// Build reads more than its plan only when what it read was not enough:
// a text part read in part whose converted text came out no longer than
// the truncation size (plus a margin) is read again four times larger
// (see "Email items" in docs/design.md), and an all-or-nothing plain body
// that turns out truncated may need a longer read for its Preview. A
// Source backed by a plan's reads must therefore fall back to the real
// read for anything the plan does not cover.
type Plan struct {
	// Header is the top-level header block (Source.Header,
	// BODY.PEEK[HEADER]). Build always reads it.
	Header bool
	// Sections are the body parts read (Source.Section), each path once,
	// with the most bytes read of it (0: all).
	Sections []PlannedSection
	// Full is set when the whole message is read (Source.Full: a MIME
	// body, MS-ASAIRS 2.2.2.22.1 Type 4); at most FullMax bytes of it are
	// read (0: all).
	Full    bool
	FullMax int64
}

// PlannedSection is one body part in a Plan.
type PlannedSection struct {
	// Path is the part's IMAP section number, as in Part.Path.
	Path []int
	// MaxBytes is the most bytes read from the start of the part's body
	// (BODY.PEEK[path]<0.MaxBytes>); 0 means all of it.
	MaxBytes int64
}

// PlanReads returns the reads Build makes first for a message whose MIME
// structure is root (nil: a plain-text message) with opts. It makes the
// same choices Build makes, with the same code: body type (MS-ASAIRS
// 2.2.2.22), text part, first read size, and a Preview rendered apart.
func PlanReads(root *Part, opts Options) Plan {
	if root == nil {
		root = &Part{Type: "text", Subtype: "plain", Path: []int{1}}
	}
	var lay layout
	lay.collect(root, 0)
	p := Plan{Header: true}
	pref := choosePreference(&opts, messageClass(root))
	if pref.Type == BodyMIME {
		p.Full, p.FullMax = true, mimeRead(pref.TruncationSize)
	} else {
		p.addText(&lay, pref.Type, pref.TruncationSize)
	}
	if maybe, _ := previewRender(pref, opts.version()); maybe {
		p.addText(&lay, BodyPlain, previewBytes)
	}
	return p
}

// addText adds the first read of rendering a body of type typ cut at
// limit, merged with an earlier read of the same part.
func (p *Plan) addText(lay *layout, typ BodyType, limit int64) {
	src, _, window := lay.textRead(typ, limit)
	if src == nil {
		return
	}
	for i := range p.Sections {
		s := &p.Sections[i]
		if slices.Equal(s.Path, src.Path) {
			if s.MaxBytes > 0 && (window == 0 || window > s.MaxBytes) {
				s.MaxBytes = window
			}
			return
		}
	}
	p.Sections = append(p.Sections, PlannedSection{Path: slices.Clone(src.Path), MaxBytes: window})
}

// CoversSection reports whether the plan reads enough of the part at path
// to answer Source.Section(path, maxBytes).
func (p *Plan) CoversSection(path []int, maxBytes int64) bool {
	for _, s := range p.Sections {
		if slices.Equal(s.Path, path) {
			return s.MaxBytes == 0 || maxBytes > 0 && maxBytes <= s.MaxBytes
		}
	}
	return false
}
