package wbxml

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// valueForm says how a tag's content travels in WBXML and prints in XML.
type valueForm uint8

const (
	formString       valueForm = iota // STR_I, printed as text (most tags)
	formOpaqueText                    // OPAQUE whose bytes are text (RFC 822 MIME)
	formOpaqueBinary                  // OPAQUE whose bytes are binary, printed as base64
)

// opaqueForms lists the tags whose content is sent as OPAQUE
// (MS-ASWBXML 2.1.2.1.1; MS-ASCMD 2.2.3.106 Mime, 2.2.3.35 ConversationId,
// MS-ASEMAIL 2.2.2.15/16 ConversationId and ConversationIndex). Every other
// tag is sent as STR_I.
var opaqueForms = map[Tag]valueForm{
	ComposeMailMime:              formOpaqueText,
	Email2ConversationId:         formOpaqueBinary,
	Email2ConversationIndex:      formOpaqueBinary,
	SearchConversationId:         formOpaqueBinary,
	ItemOperationsConversationId: formOpaqueBinary,
}

// SentAsOpaque reports whether EAS sends t's content as OPAQUE rather than
// as an inline string.
func (t Tag) SentAsOpaque() bool { return opaqueForms[t] != formString }

// The enc attribute of the XML form (never in WBXML) marks content that
// differs from its tag's usual form; see docs/wbxml.md.
const (
	encAttr         = "enc"
	encOpaque       = "opaque"        // OPAQUE, content is the text
	encOpaqueBase64 = "opaque-base64" // OPAQUE, content is base64
	encStr          = "str"           // STR_I, content is the text
	encStrBase64    = "str-base64"    // STR_I, content is base64 (bytes XML cannot hold)
)

// ToXML writes the document rooted at e as indented XML: spec tag names,
// and xmlns="Page:" on the root and on every element whose code page
// differs from its parent's. OPAQUE content of binary tags prints as
// base64; content that XML cannot hold or that is not in its tag's usual
// form carries an enc attribute (see docs/wbxml.md).
func ToXML(w io.Writer, e *Element) error {
	bw := bufio.NewWriterSize(w, 16<<10)
	bw.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	if err := writeXML(bw, e, 0xFF, 0); err != nil {
		return err
	}
	return bw.Flush()
}

func writeXML(w *bufio.Writer, e *Element, parentPage uint8, depth int) error {
	name := e.Tag.Name()
	if name == "" {
		return fmt.Errorf("wbxml: ToXML: %w: %v", ErrUnknownTag, e.Tag)
	}
	for range depth {
		w.WriteString("  ")
	}
	w.WriteByte('<')
	w.WriteString(name)
	if e.Tag.Page() != parentPage {
		w.WriteString(` xmlns="`)
		w.WriteString(e.Tag.Namespace())
		w.WriteString(`:"`)
	}
	content, enc := xmlContent(e)
	if enc != "" {
		w.WriteString(` enc="`)
		w.WriteString(enc)
		w.WriteByte('"')
	}
	if content == "" && len(e.Children) == 0 {
		w.WriteString("/>\n")
		return nil
	}
	w.WriteByte('>')
	escapeText(w, content)
	if len(e.Children) > 0 {
		w.WriteByte('\n')
		for _, c := range e.Children {
			if err := writeXML(w, c, e.Tag.Page(), depth+1); err != nil {
				return err
			}
		}
		for range depth {
			w.WriteString("  ")
		}
	}
	w.WriteString("</")
	w.WriteString(name)
	w.WriteString(">\n")
	return nil
}

// xmlContent returns the text to print for e's content and the enc
// attribute it needs, if any.
func xmlContent(e *Element) (content, enc string) {
	form := opaqueForms[e.Tag]
	if e.IsOpaque {
		switch {
		case len(e.Opaque) == 0:
			return "", encOpaque // an empty element would read back as no content
		case form == formOpaqueBinary:
			return base64.StdEncoding.EncodeToString(e.Opaque), ""
		case !xmlSafe(e.Opaque):
			return base64.StdEncoding.EncodeToString(e.Opaque), encOpaqueBase64
		case form == formOpaqueText:
			return string(e.Opaque), ""
		default:
			return string(e.Opaque), encOpaque
		}
	}
	switch {
	case e.Text == "":
		return "", ""
	case !xmlSafe([]byte(e.Text)):
		return base64.StdEncoding.EncodeToString([]byte(e.Text)), encStrBase64
	case form != formString:
		return e.Text, encStr
	}
	return e.Text, ""
}

// xmlSafe reports whether b is UTF-8 made only of characters XML 1.0
// allows (section 2.2), so that it survives a trip through XML text.
func xmlSafe(b []byte) bool {
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
			return false
		}
		i += n
	}
	return true
}

// escapeText writes s with &, <, > and CR escaped. CR must be escaped,
// since XML parsers turn a literal CR LF into LF.
func escapeText(w *bufio.Writer, s string) {
	last := 0
	for i := 0; i < len(s); i++ {
		var esc string
		switch s[i] {
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\r':
			esc = "&#xD;"
		default:
			continue
		}
		w.WriteString(s[last:i])
		w.WriteString(esc)
		last = i + 1
	}
	w.WriteString(s[last:])
}

// FromXML reads a document in the XML form that ToXML writes. Each
// element's namespace names its code page ("AirSync:" or "AirSync");
// whitespace between child elements is ignored, and leaf content is
// kept exactly. Nesting deeper than DefaultLimits.MaxDepth is refused with
// ErrTooDeep, as the decoder refuses it in WBXML.
func FromXML(r io.Reader) (*Element, error) {
	dec := xml.NewDecoder(r)
	type open struct {
		e    *Element
		enc  string
		text bytes.Buffer
	}
	var (
		root  *Element
		stack []*open
	)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			if root == nil || len(stack) > 0 {
				return nil, fmt.Errorf("wbxml: FromXML: %w", ErrTruncated)
			}
			return root, nil
		}
		if err != nil {
			return nil, fmt.Errorf("wbxml: FromXML: %w", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, fmt.Errorf("wbxml: FromXML: %w: second root element <%s>", ErrUnbalanced, tok.Name.Local)
			}
			if tok.Name.Space == "" {
				return nil, fmt.Errorf("wbxml: FromXML: <%s> has no namespace (code page)", tok.Name.Local)
			}
			t, ok := TagByName(tok.Name.Space, tok.Name.Local)
			if !ok {
				return nil, fmt.Errorf("wbxml: FromXML: %w: %s in %q", ErrUnknownTag, tok.Name.Local, tok.Name.Space)
			}
			if len(stack) >= DefaultLimits.MaxDepth {
				return nil, fmt.Errorf("wbxml: FromXML: %w: more than %d levels", ErrTooDeep, DefaultLimits.MaxDepth)
			}
			o := &open{e: &Element{Tag: t}}
			for _, a := range tok.Attr {
				switch {
				case a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns":
				case a.Name.Space == "" && a.Name.Local == encAttr:
					o.enc = a.Value
				default:
					return nil, fmt.Errorf("wbxml: FromXML: %w: <%s %s>", ErrAttributes, tok.Name.Local, a.Name.Local)
				}
			}
			if n := len(stack); n > 0 {
				if stack[n-1].enc != "" {
					return nil, fmt.Errorf("wbxml: FromXML: <%s enc=%q> has child elements", stack[n-1].e.Tag.Name(), stack[n-1].enc)
				}
				stack[n-1].e.Children = append(stack[n-1].e.Children, o.e)
			} else {
				root = o.e
			}
			stack = append(stack, o)
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(tok)
			}
		case xml.EndElement:
			o := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if err := setContent(o.e, o.enc, o.text.String()); err != nil {
				return nil, err
			}
		}
	}
}

// setContent gives e its content from the XML text s and enc attribute.
func setContent(e *Element, enc, s string) error {
	if len(e.Children) > 0 {
		if strings.TrimSpace(s) != "" {
			return fmt.Errorf("wbxml: FromXML: <%s>: %w", e.Tag.Name(), ErrMixedContent)
		}
		return nil
	}
	form := opaqueForms[e.Tag]
	if enc == "" {
		switch {
		case s == "":
			return nil
		case form == formOpaqueText:
			enc = encOpaque
		case form == formOpaqueBinary:
			enc = encOpaqueBase64
		default:
			enc = encStr
		}
	}
	switch enc {
	case encStr:
		e.Text = s
	case encStrBase64:
		b, err := decodeBase64(e, s)
		if err != nil {
			return err
		}
		e.Text = string(b)
	case encOpaque:
		e.IsOpaque, e.Opaque = true, []byte(s)
	case encOpaqueBase64:
		b, err := decodeBase64(e, s)
		if err != nil {
			return err
		}
		e.IsOpaque, e.Opaque = true, b
	default:
		return fmt.Errorf("wbxml: FromXML: <%s enc=%q>: unknown enc", e.Tag.Name(), enc)
	}
	return nil
}

// decodeBase64 decodes standard base64, ignoring ASCII white space so that
// wrapped lines are fine.
func decodeBase64(e *Element, s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' {
			return -1
		}
		return r
	}, s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("wbxml: FromXML: <%s>: %w", e.Tag.Name(), errors.Join(errBadBase64, err))
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

var errBadBase64 = errors.New("bad base64 content")
