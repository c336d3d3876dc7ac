package mailitem

import "github.com/easgate/easgate/wbxml"

// elements hands out the wbxml elements of one item from blocks
// allocated together: an item is some twenty elements, and allocated one
// by one they were a quarter of the allocations of building it. The
// elements are what wbxml.E, T and O make; only where they live differs.
type elements struct {
	free []wbxml.Element
}

// itemElements is the block for an Email item: enough for a message
// with a plain or HTML body, no attachments and a category or two.
const itemElements = 24

// next returns a new element with tag t.
func (a *elements) next(t wbxml.Tag) *wbxml.Element {
	if len(a.free) == 0 {
		a.free = make([]wbxml.Element, itemElements/3)
	}
	e := &a.free[0]
	a.free = a.free[1:]
	e.Tag = t
	return e
}

// e is wbxml.E, with room for extra more children when it has some.
func (a *elements) e(t wbxml.Tag, extra int, children ...*wbxml.Element) *wbxml.Element {
	e := a.next(t)
	n := 0
	for _, c := range children {
		if c != nil {
			n++
		}
	}
	if n > 0 {
		e.Children = make([]*wbxml.Element, 0, n+extra)
		for _, c := range children {
			if c != nil {
				e.Children = append(e.Children, c)
			}
		}
	}
	return e
}

// t is wbxml.T.
func (a *elements) t(t wbxml.Tag, s string) *wbxml.Element {
	e := a.next(t)
	e.Text = s
	return e
}

// o is wbxml.O.
func (a *elements) o(t wbxml.Tag, b []byte) *wbxml.Element {
	e := a.next(t)
	e.Opaque, e.IsOpaque = b, true
	return e
}
