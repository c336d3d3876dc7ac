package wbxml

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
)

// header is the WBXML header every EAS body starts with (MS-ASWBXML
// 2.1.2.1): version 1.3, public identifier 1 (unknown), charset UTF-8
// (MIBenum 106), empty string table.
var header = []byte{0x03, 0x01, 0x6A, 0x00}

// encodeBufSize is the encoder's output buffer: writes reach the
// underlying writer in blocks of this size.
const encodeBufSize = 16 << 10

// Encoder writes a WBXML document token by token. The header is written
// with the first element; SWITCH_PAGE only when the code page changes.
// Output is buffered: call Close (or Flush) at the end. The first error is
// sticky and returned by every later call.
type Encoder struct {
	w      io.Writer // nil: buf grows without bound (Marshal)
	buf    []byte
	page   uint8
	depth  int
	header bool
	done   bool // the root element has closed
	err    error
}

// NewEncoder returns an encoder writing to w.
func NewEncoder(w io.Writer) *Encoder {
	return &Encoder{w: w, buf: make([]byte, 0, encodeBufSize)}
}

func (e *Encoder) fail(err error) error {
	e.err = err
	return err
}

func (e *Encoder) flushIfFull() error {
	if e.w != nil && len(e.buf) >= encodeBufSize-64 {
		return e.Flush()
	}
	return nil
}

// tag writes a tag byte, preceded by the header or a SWITCH_PAGE as needed.
func (e *Encoder) tag(t Tag, content bool) error {
	if e.err != nil {
		return e.err
	}
	if e.done {
		return e.fail(fmt.Errorf("%w: second root element %v", ErrUnbalanced, t))
	}
	if !t.Known() {
		return e.fail(fmt.Errorf("wbxml: encode %v: %w", t, ErrUnknownTag))
	}
	if !e.header {
		e.buf = append(e.buf, header...)
		e.header = true
	}
	if p := t.Page(); p != e.page {
		e.buf = append(e.buf, tokSwitchPage, p)
		e.page = p
	}
	b := t.Token()
	if content {
		b |= bitContent
		e.depth++
	} else if e.depth == 0 {
		e.done = true
	}
	e.buf = append(e.buf, b)
	return e.flushIfFull()
}

// Start opens element t; its content follows and End closes it.
func (e *Encoder) Start(t Tag) error { return e.tag(t, true) }

// Empty writes element t without content (the tag without bit 0x40).
func (e *Encoder) Empty(t Tag) error { return e.tag(t, false) }

// End closes the innermost open element.
func (e *Encoder) End() error {
	if e.err != nil {
		return e.err
	}
	if e.depth == 0 {
		return e.fail(fmt.Errorf("%w: End without an open element", ErrUnbalanced))
	}
	e.depth--
	if e.depth == 0 {
		e.done = true
	}
	e.buf = append(e.buf, tokEnd)
	return e.flushIfFull()
}

func (e *Encoder) inElement(what string) error {
	if e.err != nil {
		return e.err
	}
	if e.depth == 0 {
		return e.fail(fmt.Errorf("%w: %s outside an element", ErrUnbalanced, what))
	}
	return nil
}

// Text writes s as an inline string (STR_I). NUL bytes, which would end
// the string early, are dropped (as Z-Push does).
func (e *Encoder) Text(s string) error {
	if err := e.inElement("Text"); err != nil {
		return err
	}
	e.buf = append(e.buf, tokStrI)
	for len(s) > 0 {
		chunk := s
		if i := strings.IndexByte(s, 0); i >= 0 {
			chunk, s = s[:i], s[i+1:]
		} else {
			s = ""
		}
		for len(chunk) > 0 {
			if e.w != nil && len(e.buf) >= encodeBufSize {
				if err := e.Flush(); err != nil {
					return err
				}
			}
			n := len(chunk)
			if e.w != nil {
				n = min(n, cap(e.buf)-len(e.buf))
			}
			e.buf = append(e.buf, chunk[:n]...)
			chunk = chunk[n:]
		}
	}
	e.buf = append(e.buf, 0)
	return e.flushIfFull()
}

// TextFrom writes what r yields up to io.EOF as one inline string
// (STR_I), through the encoder's buffer, so that a long text (the base64
// of an attachment in ItemOperations Data) never sits in memory whole.
// NUL bytes are dropped as in Text. An error from r is returned and, as
// the string is then cut short, sticks.
func (e *Encoder) TextFrom(r io.Reader) error {
	if err := e.inElement("Text"); err != nil {
		return err
	}
	e.buf = append(e.buf, tokStrI)
	empty := 0 // consecutive reads that returned nothing
	for {
		if len(e.buf) == cap(e.buf) {
			if e.w == nil {
				e.buf = append(e.buf, 0)[:len(e.buf)]
			} else if err := e.Flush(); err != nil {
				return err
			}
		}
		free := e.buf[len(e.buf):cap(e.buf)]
		m, err := r.Read(free)
		kept := free[:m]
		if bytes.IndexByte(kept, 0) >= 0 {
			kept = slices.DeleteFunc(kept, func(b byte) bool { return b == 0 })
		}
		e.buf = e.buf[:len(e.buf)+len(kept)]
		switch {
		case err == io.EOF:
			e.buf = append(e.buf, 0)
			return e.flushIfFull()
		case err != nil:
			return e.fail(err)
		case m == 0:
			if empty++; empty >= 100 {
				return e.fail(fmt.Errorf("wbxml: TextFrom: %w", io.ErrNoProgress))
			}
		default:
			empty = 0
		}
	}
}

// TextElement writes <t>s</t>, or <t/> when s is empty.
func (e *Encoder) TextElement(t Tag, s string) error {
	if s == "" {
		return e.Empty(t)
	}
	if err := e.Start(t); err != nil {
		return err
	}
	if err := e.Text(s); err != nil {
		return err
	}
	return e.End()
}

// appendUint appends v as an mb_u_int32.
func appendUint(b []byte, v uint32) []byte {
	var tmp [5]byte
	i := len(tmp) - 1
	tmp[i] = byte(v & 0x7F)
	for v >>= 7; v > 0; v >>= 7 {
		i--
		tmp[i] = byte(v&0x7F) | 0x80
	}
	return append(b, tmp[i:]...)
}

func (e *Encoder) opaqueHeader(n int64) error {
	if err := e.inElement("Opaque"); err != nil {
		return err
	}
	if n < 0 || n > 0xFFFFFFFF {
		return e.fail(fmt.Errorf("%w: %d bytes", ErrOpaqueTooLong, n))
	}
	e.buf = append(e.buf, tokOpaque)
	e.buf = appendUint(e.buf, uint32(n))
	return nil
}

// Opaque writes b as OPAQUE data.
func (e *Encoder) Opaque(b []byte) error {
	if err := e.opaqueHeader(int64(len(b))); err != nil {
		return err
	}
	if e.w != nil && len(b) > encodeBufSize {
		if err := e.Flush(); err != nil {
			return err
		}
		if _, err := e.w.Write(b); err != nil {
			return e.fail(err)
		}
		return nil
	}
	e.buf = append(e.buf, b...)
	return e.flushIfFull()
}

// OpaqueFrom writes exactly n bytes read from r as OPAQUE data, through the
// encoder's buffer, so that a large body never sits in memory whole. If r
// ends before n bytes the output is corrupt and the encoder fails with
// io.ErrUnexpectedEOF.
func (e *Encoder) OpaqueFrom(r io.Reader, n int64) error {
	if err := e.opaqueHeader(n); err != nil {
		return err
	}
	empty := 0 // consecutive reads that returned nothing
	for n > 0 {
		if e.w != nil && len(e.buf) == cap(e.buf) {
			if err := e.Flush(); err != nil {
				return err
			}
		}
		if e.w == nil && len(e.buf) == cap(e.buf) {
			e.buf = append(e.buf, 0)[:len(e.buf)]
		}
		free := e.buf[len(e.buf):cap(e.buf)]
		if int64(len(free)) > n {
			free = free[:n]
		}
		m, err := r.Read(free)
		e.buf = e.buf[:len(e.buf)+m]
		n -= int64(m)
		switch {
		case err == io.EOF && n > 0:
			return e.fail(fmt.Errorf("wbxml: OpaqueFrom: %w", io.ErrUnexpectedEOF))
		case err != nil && err != io.EOF:
			return e.fail(err)
		case m == 0 && err == nil:
			if empty++; empty >= 100 {
				return e.fail(fmt.Errorf("wbxml: OpaqueFrom: %w", io.ErrNoProgress))
			}
		default:
			empty = 0
		}
	}
	return e.flushIfFull()
}

// Flush writes buffered output to the underlying writer.
func (e *Encoder) Flush() error {
	if e.err != nil {
		return e.err
	}
	if e.w == nil || len(e.buf) == 0 {
		return nil
	}
	_, err := e.w.Write(e.buf)
	e.buf = e.buf[:0]
	if err != nil {
		return e.fail(err)
	}
	return nil
}

// Close checks that exactly one root element was written and closed, and
// flushes. It does not close the underlying writer.
func (e *Encoder) Close() error {
	if e.err != nil {
		return e.err
	}
	if !e.header {
		return e.fail(fmt.Errorf("%w: no root element", ErrUnbalanced))
	}
	if !e.done {
		return e.fail(fmt.Errorf("%w: %d elements left open", ErrUnbalanced, e.depth))
	}
	return e.Flush()
}
