package wbxml

import (
	"bufio"
	"errors"
	"io"
)

// Global tokens of WBXML 1.3 (section 7.1). EAS uses only SWITCH_PAGE,
// END, STR_I and OPAQUE (MS-ASWBXML 2.1.2).
const (
	tokSwitchPage = 0x00
	tokEnd        = 0x01
	tokStrI       = 0x03
	tokOpaque     = 0xC3

	// bitContent marks a tag with content; bitAttributes one with attributes.
	bitContent    = 0x40
	bitAttributes = 0x80
)

// isUnsupportedGlobal reports the global tokens EAS does not use: ENTITY,
// LITERAL, EXT_I_*, PI, LITERAL_C, EXT_T_*, STR_T, LITERAL_A, EXT_*,
// LITERAL_AC.
func isUnsupportedGlobal(b byte) bool {
	return b&0x3F <= 0x04 && b != tokSwitchPage && b != tokEnd && b != tokStrI && b != tokOpaque
}

// charsetUTF8 is the IANA MIBenum of UTF-8, the only charset EAS uses.
const charsetUTF8 = 106

// Limits bound what a [Decoder] accepts. A zero or negative field takes
// its value from [DefaultLimits].
type Limits struct {
	MaxDepth     int   // deepest element nesting (the root is depth 1)
	MaxBytes     int64 // whole document, header and OPAQUE data included
	MaxStringLen int   // one inline string (STR_I), without its terminator
}

// DefaultLimits are sane bounds for EAS requests: 64 levels (the deepest
// EAS document has about 12), a 64 MiB document and 32 MiB strings (an
// attachment fetched inline is base64 text). Servers may lower them.
var DefaultLimits = Limits{MaxDepth: 64, MaxBytes: 64 << 20, MaxStringLen: 32 << 20}

func (l Limits) withDefaults() Limits {
	if l.MaxDepth <= 0 {
		l.MaxDepth = DefaultLimits.MaxDepth
	}
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxStringLen <= 0 {
		l.MaxStringLen = DefaultLimits.MaxStringLen
	}
	return l
}

// Kind says what a [Token] is.
type Kind uint8

// Token kinds.
const (
	StartElement Kind = iota + 1 // an element opens; Tag and HasContent are set
	EndElement                   // an element closes; Tag is set
	Text                         // an inline string (STR_I); Text is set
	Opaque                       // OPAQUE data; Len is set, read it with Decoder.Opaque
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case StartElement:
		return "StartElement"
	case EndElement:
		return "EndElement"
	case Text:
		return "Text"
	case Opaque:
		return "Opaque"
	}
	return "Kind(?)"
}

// Token is one item of a WBXML body.
type Token struct {
	Kind Kind
	// Tag is the element that starts or ends.
	Tag Tag
	// HasContent is false for an element written without the content bit
	// (<Tag/>); its EndElement is the next token.
	HasContent bool
	// Text is the string of a Text token, as sent (not validated as UTF-8).
	Text string
	// Len is the declared length of an Opaque token, already checked
	// against the limits and, when the reader's size is known, the input.
	Len int64
}

// Decoder reads a WBXML document token by token. It reads its input
// through a small buffer and never more than the current token needs.
type Decoder struct {
	r      *bufio.Reader
	lim    Limits
	off    int64 // bytes consumed from the input
	remain int64 // input bytes left after off when known (bytes.Reader...), else -1

	header     bool
	done       bool // the root element has closed
	page       uint8
	stack      []Tag
	pendingEnd bool // an empty element's EndElement is due

	opaqueLeft int64 // unread bytes of the current OPAQUE
	opaque     opaqueReader
	sbuf       []byte // long strings that do not fit the read buffer
	err        error  // sticky
}

// NewDecoder returns a decoder reading from r within lim.
func NewDecoder(r io.Reader, lim Limits) *Decoder {
	d := &Decoder{lim: lim.withDefaults(), remain: -1}
	if lr, ok := r.(interface{ Len() int }); ok {
		d.remain = int64(lr.Len())
	}
	if br, ok := r.(*bufio.Reader); ok && br.Size() >= 4096 {
		d.r = br
		d.remain = -1 // the buffer hides how much is left
	} else {
		d.r = bufio.NewReaderSize(r, 16<<10)
	}
	d.opaque.d = d
	return d
}

// Offset returns the number of input bytes consumed so far.
func (d *Decoder) Offset() int64 { return d.off }

// Depth returns the number of open elements.
func (d *Decoder) Depth() int { return len(d.stack) }

func (d *Decoder) syntax(off int64, err error) error {
	d.err = &SyntaxError{Offset: off, Err: err}
	return d.err
}

// ioErr turns an error of the underlying reader into the decoder's error:
// io.EOF means the document is truncated; other errors pass unchanged.
func (d *Decoder) ioErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return d.syntax(d.off, ErrTruncated)
	}
	if err == ErrTooLarge {
		return d.syntax(d.off, ErrTooLarge)
	}
	d.err = err
	return err
}

func (d *Decoder) readByte() (byte, error) {
	if d.off >= d.lim.MaxBytes {
		return 0, ErrTooLarge
	}
	b, err := d.r.ReadByte()
	if err != nil {
		return 0, err
	}
	d.off++
	return b, nil
}

// readUint reads an mb_u_int32 (WBXML 1.3 section 5.1): at most 5 bytes
// of 7 bits each, most significant first, and at most 32 bits.
func (d *Decoder) readUint() (uint32, error) {
	start := d.off
	var v uint64
	for i := 0; i < 5; i++ {
		b, err := d.readByte()
		if err != nil {
			return 0, d.ioErr(err)
		}
		v = v<<7 | uint64(b&0x7F)
		if b&0x80 == 0 {
			if v > 0xFFFFFFFF {
				return 0, d.syntax(start, ErrIntOverflow)
			}
			return uint32(v), nil
		}
	}
	return 0, d.syntax(start, ErrIntOverflow)
}

// readHeader reads version, public identifier, charset and string table
// length (WBXML 1.3 section 5.3; MS-ASWBXML 2.1.2.1: 03 01 6A 00).
func (d *Decoder) readHeader() error {
	v, err := d.readByte()
	if err != nil {
		return d.ioErr(err)
	}
	if v < 0x01 || v > 0x03 {
		return d.syntax(0, ErrBadHeader)
	}
	off := d.off
	pub, err := d.readUint()
	if err != nil {
		return err
	}
	if pub == 0 { // public identifier given as a string table index
		return d.syntax(off, ErrBadHeader)
	}
	off = d.off
	cs, err := d.readUint()
	if err != nil {
		return err
	}
	if cs != charsetUTF8 {
		return d.syntax(off, ErrBadHeader)
	}
	off = d.off
	n, err := d.readUint()
	if err != nil {
		return err
	}
	if n != 0 {
		return d.syntax(off, ErrStringTable)
	}
	d.header = true
	return nil
}

// Token returns the next token. After the root element's EndElement it
// returns io.EOF, or an error if bytes follow the root. Errors are sticky.
// An OPAQUE left unread (or partly read) is skipped first.
func (d *Decoder) Token() (Token, error) {
	if d.err != nil {
		return Token{}, d.err
	}
	if d.opaqueLeft > 0 {
		if err := d.skipOpaque(); err != nil {
			return Token{}, err
		}
	}
	if d.pendingEnd {
		d.pendingEnd = false
		return d.pop(), nil
	}
	if !d.header {
		if err := d.readHeader(); err != nil {
			return Token{}, err
		}
	}
	if d.done {
		if _, err := d.r.ReadByte(); err == io.EOF {
			d.err = io.EOF
			return Token{}, io.EOF
		} else if err != nil {
			return Token{}, d.ioErr(err)
		}
		return Token{}, d.syntax(d.off, ErrUnbalanced)
	}
	for {
		off := d.off
		b, err := d.readByte()
		if err != nil {
			return Token{}, d.ioErr(err)
		}
		switch {
		case b == tokSwitchPage:
			p, err := d.readByte()
			if err != nil {
				return Token{}, d.ioErr(err)
			}
			if p >= numPages {
				return Token{}, d.syntax(off+1, ErrUnknownPage)
			}
			d.page = p
			continue
		case b == tokEnd:
			if len(d.stack) == 0 {
				return Token{}, d.syntax(off, ErrUnbalanced)
			}
			return d.pop(), nil
		case b == tokStrI:
			if len(d.stack) == 0 {
				return Token{}, d.syntax(off, ErrUnbalanced)
			}
			s, err := d.readString()
			if err != nil {
				return Token{}, err
			}
			return Token{Kind: Text, Text: s}, nil
		case b == tokOpaque:
			if len(d.stack) == 0 {
				return Token{}, d.syntax(off, ErrUnbalanced)
			}
			return d.startOpaque()
		case isUnsupportedGlobal(b):
			return Token{}, d.syntax(off, ErrUnsupportedToken)
		case b&bitAttributes != 0:
			return Token{}, d.syntax(off, ErrAttributes)
		}
		tag := MakeTag(d.page, b&0x3F)
		if tagNames[d.page][b&0x3F] == "" {
			return Token{}, d.syntax(off, ErrUnknownTag)
		}
		if len(d.stack) >= d.lim.MaxDepth {
			return Token{}, d.syntax(off, ErrTooDeep)
		}
		d.stack = append(d.stack, tag)
		content := b&bitContent != 0
		d.pendingEnd = !content
		return Token{Kind: StartElement, Tag: tag, HasContent: content}, nil
	}
}

func (d *Decoder) pop() Token {
	tag := d.stack[len(d.stack)-1]
	d.stack = d.stack[:len(d.stack)-1]
	if len(d.stack) == 0 {
		d.done = true
	}
	return Token{Kind: EndElement, Tag: tag}
}

// readString reads an inline string up to its NUL terminator.
func (d *Decoder) readString() (string, error) {
	start := d.off
	d.sbuf = d.sbuf[:0]
	for {
		line, err := d.r.ReadSlice(0)
		n := len(line)
		if err == nil {
			n-- // the terminator
		}
		if len(d.sbuf)+n > d.lim.MaxStringLen || d.off+int64(len(line)) > d.lim.MaxBytes {
			return "", d.syntax(start, ErrTooLarge)
		}
		d.off += int64(len(line))
		switch err {
		case nil:
			if len(d.sbuf) == 0 {
				return string(line[:n]), nil
			}
			d.sbuf = append(d.sbuf, line[:n]...)
			return string(d.sbuf), nil
		case bufio.ErrBufferFull:
			d.sbuf = append(d.sbuf, line...)
		default:
			return "", d.ioErr(err)
		}
	}
}

func (d *Decoder) startOpaque() (Token, error) {
	off := d.off
	n, err := d.readUint()
	if err != nil {
		return Token{}, err
	}
	l := int64(n)
	if l > d.lim.MaxBytes-d.off {
		return Token{}, d.syntax(off, ErrOpaqueTooLong)
	}
	if d.remain >= 0 && l > d.remain-d.off {
		return Token{}, d.syntax(off, errors.Join(ErrOpaqueTooLong, ErrTruncated))
	}
	d.opaqueLeft = l
	return Token{Kind: Opaque, Len: l}, nil
}

func (d *Decoder) skipOpaque() error {
	n, err := d.r.Discard(int(min(d.opaqueLeft, 1<<30)))
	d.off += int64(n)
	d.opaqueLeft -= int64(n)
	if err != nil {
		return d.opaqueErr(err)
	}
	if d.opaqueLeft > 0 {
		return d.skipOpaque()
	}
	return nil
}

func (d *Decoder) opaqueErr(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return d.syntax(d.off, errors.Join(ErrOpaqueTooLong, ErrTruncated))
	}
	d.err = err
	return err
}

// Opaque returns a reader of the current OPAQUE token's data: exactly its
// declared length, read straight from the input. It is valid until the
// next call to Token; data left unread is skipped then. If the input ends
// early, Read returns a *SyntaxError (ErrTruncated).
func (d *Decoder) Opaque() io.Reader { return &d.opaque }

type opaqueReader struct{ d *Decoder }

func (o *opaqueReader) Read(p []byte) (int, error) {
	d := o.d
	if d.err != nil {
		return 0, d.err
	}
	if d.opaqueLeft == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > d.opaqueLeft {
		p = p[:d.opaqueLeft]
	}
	n, err := d.r.Read(p)
	d.off += int64(n)
	d.opaqueLeft -= int64(n)
	if err != nil && !(err == io.EOF && d.opaqueLeft == 0) {
		return n, d.opaqueErr(err)
	}
	return n, nil
}
