package wbxml

import "strings"

// Tag identifies an EAS element: its code page in the high byte and its
// token (0x05..0x3F) in the low byte, as in MS-ASWBXML 2.1.2.1. The
// constants of this package (AirSyncSync, EmailSubject, ...) are the tags
// the protocol defines; other values are unknown tags.
type Tag uint16

// MakeTag returns the tag with the given code page and token. The result
// is a known tag only if [Tag.Known] says so.
func MakeTag(page, token uint8) Tag { return Tag(page)<<8 | Tag(token) }

// Page returns the code page of t.
func (t Tag) Page() uint8 { return uint8(t >> 8) }

// Token returns the token of t within its code page (without the content
// bit 0x40).
func (t Tag) Token() uint8 { return uint8(t) }

// Known reports whether t is a tag of the code page table.
func (t Tag) Known() bool { return t.Name() != "" }

// Name returns the spec name of t, such as "SyncKey", or "" for an
// unknown tag.
func (t Tag) Name() string {
	p, tok := t.Page(), t.Token()
	if int(p) >= numPages || tok > 0x3F {
		return ""
	}
	return tagNames[p][tok]
}

// Namespace returns the name of t's code page, such as "AirSync", which
// is also its XML namespace (without the trailing colon). It returns ""
// for a page beyond the table.
func (t Tag) Namespace() string {
	if int(t.Page()) >= numPages {
		return ""
	}
	return pageNames[t.Page()]
}

// String returns "Namespace:Name", such as "AirSync:SyncKey", or the page
// and token in hexadecimal, such as "0x00:0x3f", for an unknown tag.
func (t Tag) String() string {
	if name := t.Name(); name != "" {
		return pageNames[t.Page()] + ":" + name
	}
	const hex = "0123456789abcdef"
	p, tok := t.Page(), t.Token()
	return string([]byte{'0', 'x', hex[p>>4], hex[p&15], ':', '0', 'x', hex[tok>>4], hex[tok&15]})
}

// tagsByName maps "Namespace\x00Name" to its tag.
var tagsByName = func() map[string]Tag {
	m := make(map[string]Tag, 700)
	for p := range tagNames {
		for tok, name := range tagNames[p] {
			if name != "" {
				m[pageNames[p]+"\x00"+name] = MakeTag(uint8(p), uint8(tok))
			}
		}
	}
	return m
}()

// TagByName returns the tag named name on the code page named namespace.
// The namespace may carry the trailing colon of the XML form ("AirSync:").
func TagByName(namespace, name string) (Tag, bool) {
	t, ok := tagsByName[strings.TrimSuffix(namespace, ":")+"\x00"+name]
	return t, ok
}
