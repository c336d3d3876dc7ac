package wbxml

import (
	"fmt"
	"io"
	"slices"
)

// Element is a WBXML element in memory. Its content is Text (sent as
// STR_I), Opaque data (IsOpaque, sent as OPAQUE) or Children; EAS never
// mixes text and children. An element with none of them is written
// without the content bit (<Tag/>).
type Element struct {
	Tag      Tag
	Text     string
	Opaque   []byte
	IsOpaque bool
	Children []*Element
}

// E returns an element with the given children (none: an empty element).
// Nil children are left out, so optional parts can be written inline.
func E(t Tag, children ...*Element) *Element {
	e := &Element{Tag: t}
	for _, c := range children {
		if c != nil {
			e.Children = append(e.Children, c)
		}
	}
	return e
}

// T returns an element holding text s.
func T(t Tag, s string) *Element { return &Element{Tag: t, Text: s} }

// O returns an element holding b as OPAQUE data.
func O(t Tag, b []byte) *Element { return &Element{Tag: t, Opaque: b, IsOpaque: true} }

// Add appends the non-nil children to e and returns e.
func (e *Element) Add(children ...*Element) *Element {
	for _, c := range children {
		if c != nil {
			e.Children = append(e.Children, c)
		}
	}
	return e
}

// Child returns the first child of e with tag t, or nil. It may be called
// on a nil element.
func (e *Element) Child(t Tag) *Element {
	if e == nil {
		return nil
	}
	for _, c := range e.Children {
		if c.Tag == t {
			return c
		}
	}
	return nil
}

// ChildrenOf returns the children of e with tag t, in order.
func (e *Element) ChildrenOf(t Tag) []*Element {
	if e == nil {
		return nil
	}
	var out []*Element
	for _, c := range e.Children {
		if c.Tag == t {
			out = append(out, c)
		}
	}
	return out
}

// ChildText returns the content of the first child with tag t (its text,
// or its opaque data as a string), or "" if there is none.
func (e *Element) ChildText(t Tag) string {
	c := e.Child(t)
	if c == nil {
		return ""
	}
	return c.Value()
}

// Value returns e's content as a string: Text, or Opaque when IsOpaque.
func (e *Element) Value() string {
	if e.IsOpaque {
		return string(e.Opaque)
	}
	return e.Text
}

// Has reports whether e has a child with tag t (such as an empty flag
// element like AirSync:MoreAvailable).
func (e *Element) Has(t Tag) bool { return e.Child(t) != nil }

// Encode writes e and its descendants to enc. An element with both
// content (Text or Opaque) and children is refused with ErrMixedContent:
// EAS has no such element, and Parse would refuse it coming back.
func (e *Element) Encode(enc *Encoder) error {
	if len(e.Children) > 0 && (e.IsOpaque || e.Text != "") {
		return fmt.Errorf("wbxml: %s: %w", e.Tag, ErrMixedContent)
	}
	switch {
	case e.IsOpaque:
		if err := enc.Start(e.Tag); err != nil {
			return err
		}
		if err := enc.Opaque(e.Opaque); err != nil {
			return err
		}
	case e.Text == "" && len(e.Children) == 0:
		return enc.Empty(e.Tag)
	default:
		if err := enc.Start(e.Tag); err != nil {
			return err
		}
		if e.Text != "" {
			if err := enc.Text(e.Text); err != nil {
				return err
			}
		}
		for _, c := range e.Children {
			if err := c.Encode(enc); err != nil {
				return err
			}
		}
	}
	return enc.End()
}

// Marshal returns the WBXML encoding of the document rooted at e.
func Marshal(e *Element) ([]byte, error) {
	enc := &Encoder{buf: make([]byte, 0, 512)}
	if err := e.Encode(enc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return enc.buf, nil
}

// elementSlab is how many elements Parse allocates at once.
const elementSlab = 32

// Parse decodes a whole WBXML document into a tree within lim. Several
// STR_I in one element are joined; several OPAQUE too. An element holding
// two kinds of content (strings, OPAQUE, child elements), which EAS never
// sends, fails with ErrMixedContent.
func Parse(r io.Reader, lim Limits) (*Element, error) {
	d := NewDecoder(r, lim)
	var (
		root  *Element
		stack []*Element
		slab  []Element
	)
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return root, nil
		}
		if err != nil {
			return nil, err
		}
		switch tok.Kind {
		case StartElement:
			if len(slab) == 0 {
				slab = make([]Element, elementSlab)
			}
			e := &slab[0]
			slab = slab[1:]
			e.Tag = tok.Tag
			if n := len(stack); n > 0 {
				parent := stack[n-1]
				if parent.Text != "" || parent.IsOpaque {
					return nil, &SyntaxError{Offset: d.Offset() - 1, Err: ErrMixedContent}
				}
				parent.Children = append(parent.Children, e)
			} else {
				root = e
			}
			stack = append(stack, e)
		case EndElement:
			stack = stack[:len(stack)-1]
		case Text:
			top := stack[len(stack)-1]
			if tok.Text != "" && (top.IsOpaque || len(top.Children) > 0) {
				return nil, &SyntaxError{Offset: d.Offset(), Err: ErrMixedContent}
			}
			top.Text += tok.Text
		case Opaque:
			top := stack[len(stack)-1]
			if top.Text != "" || len(top.Children) > 0 {
				return nil, &SyntaxError{Offset: d.Offset(), Err: ErrMixedContent}
			}
			top.IsOpaque = true
			if top.Opaque, err = readOpaque(d, top.Opaque, tok.Len); err != nil {
				return nil, err
			}
		}
	}
}

// readOpaque appends the current OPAQUE of d to b. When the input's size
// is known the declared length was checked against it and is allocated at
// once; otherwise the buffer grows as data actually arrives.
func readOpaque(d *Decoder, b []byte, n int64) ([]byte, error) {
	if b == nil {
		b = []byte{}
	}
	if d.remain >= 0 {
		old := len(b)
		b = slices.Grow(b, int(n))[:old+int(n)]
		_, err := io.ReadFull(d.Opaque(), b[old:])
		return b, err
	}
	r := d.Opaque()
	for n > 0 {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		free := b[len(b):cap(b)]
		if int64(len(free)) > n {
			free = free[:n]
		}
		m, err := r.Read(free)
		b = b[:len(b)+m]
		n -= int64(m)
		if err != nil {
			return b, err
		}
	}
	return b, nil
}
