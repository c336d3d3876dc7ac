package mailitem

import "github.com/easgate/easgate/wbxml"

// elements hands out the wbxml elements of one item, and the lists of
// their children, from one block of each allocated together: an item is
// some twenty elements, and allocated one by one (and their children
// lists apart) they were a quarter of the allocations of building it.
// The elements are what wbxml.E, T and O make; only where they live
// differs.
//
// The builder counts the elements of an item before it makes them and
// reserves that many: every element but the root is the child of one
// other, so n elements have n-1 children between them. Past the
// reservation elements are allocated as they are needed.
type elements struct {
	free []wbxml.Element
	kids []*wbxml.Element
	// spilled is set when more was needed than reserved (for tests: the
	// counts must be exact).
	spilled bool
}

// reserve makes room for a tree of n elements.
func (a *elements) reserve(n int) {
	a.free = make([]wbxml.Element, n)
	a.kids = make([]*wbxml.Element, max(n-1, 0))
}

// next returns a new element with tag t.
func (a *elements) next(t wbxml.Tag) *wbxml.Element {
	if len(a.free) == 0 {
		a.spilled = true
		return &wbxml.Element{Tag: t}
	}
	e := &a.free[0]
	a.free = a.free[1:]
	e.Tag = t
	return e
}

// parent returns a new element with tag t and room for n children
// (none: Children stays nil, as wbxml.E leaves it).
func (a *elements) parent(t wbxml.Tag, n int) *wbxml.Element {
	e := a.next(t)
	switch {
	case n <= 0:
	case len(a.kids) >= n:
		// Full slice expression: an append past n copies rather than
		// overwriting the next element's children.
		e.Children = a.kids[:0:n]
		a.kids = a.kids[n:]
	default:
		a.spilled = true
		e.Children = make([]*wbxml.Element, 0, n)
	}
	return e
}

// t is wbxml.T.
func (a *elements) t(t wbxml.Tag, s string) *wbxml.Element {
	e := a.next(t)
	e.Text = s
	return e
}

// opt is wbxml.T when s is not empty, else nil (which Add leaves out).
func (a *elements) opt(t wbxml.Tag, s string) *wbxml.Element {
	if s == "" {
		return nil
	}
	return a.t(t, s)
}

// o is wbxml.O.
func (a *elements) o(t wbxml.Tag, b []byte) *wbxml.Element {
	e := a.next(t)
	e.Opaque, e.IsOpaque = b, true
	return e
}
