package wbxml

import (
	"errors"
	"strconv"
)

// Sentinel errors. Decoding errors come wrapped in a [*SyntaxError] that
// gives the input offset; use [errors.Is] to test for a cause.
var (
	// ErrTruncated: the input ended inside the header, a tag, a string,
	// an OPAQUE or before the root element was closed.
	ErrTruncated = errors.New("wbxml: truncated input")
	// ErrBadHeader: the header is not WBXML 1.x with UTF-8 (MIBenum 106).
	ErrBadHeader = errors.New("wbxml: bad header")
	// ErrUnknownPage: SWITCH_PAGE to a code page beyond 25, or a tag on it.
	ErrUnknownPage = errors.New("wbxml: unknown code page")
	// ErrUnknownTag: a token that its code page does not define.
	ErrUnknownTag = errors.New("wbxml: unknown tag")
	// ErrIntOverflow: an mb_u_int32 longer than 5 bytes or above 32 bits.
	ErrIntOverflow = errors.New("wbxml: mb_u_int32 overflow")
	// ErrOpaqueTooLong: an OPAQUE length beyond the input or the limits.
	ErrOpaqueTooLong = errors.New("wbxml: opaque data longer than input or limit")
	// ErrTooDeep: elements nested deeper than Limits.MaxDepth.
	ErrTooDeep = errors.New("wbxml: too deeply nested")
	// ErrTooLarge: a document beyond Limits.MaxBytes or a string beyond
	// Limits.MaxStringLen.
	ErrTooLarge = errors.New("wbxml: document too large")
	// ErrAttributes: a tag with the attribute bit 0x80; EAS uses none.
	ErrAttributes = errors.New("wbxml: attributes are not used by EAS")
	// ErrStringTable: a non-empty string table; EAS uses none.
	ErrStringTable = errors.New("wbxml: string tables are not used by EAS")
	// ErrUnsupportedToken: ENTITY, LITERAL*, EXT*, PI or STR_T.
	ErrUnsupportedToken = errors.New("wbxml: token not used by EAS")
	// ErrUnbalanced: END without an open element, content outside the
	// root element, bytes after it, or (when encoding) an unclosed or
	// second root element.
	ErrUnbalanced = errors.New("wbxml: unbalanced elements")
	// ErrMixedContent: one element holds two kinds of content (STR_I,
	// OPAQUE, child elements), which EAS never sends and the tree form
	// does not represent.
	ErrMixedContent = errors.New("wbxml: element mixes string and opaque content")
)

// SyntaxError is a decoding error at a byte offset of the input.
type SyntaxError struct {
	Offset int64 // offset of the offending byte from the start of the document
	Err    error // one of the sentinels, possibly joined with an I/O error
}

func (e *SyntaxError) Error() string {
	return e.Err.Error() + " at offset " + strconv.FormatInt(e.Offset, 10)
}

// Unwrap returns the cause.
func (e *SyntaxError) Unwrap() error { return e.Err }
