package mailitem

import (
	"bytes"
	"encoding/base64"
	"html"
	"strings"
	"unicode/utf8"
)

// sanitize returns s as text XML 1.0 can carry (section 2.2): invalid
// UTF-8 and U+FFFE/U+FFFF become U+FFFD; NUL and the other C0 controls
// except tab, CR and LF are dropped.
func sanitize(s string) string {
	ok := true
	const high, space = 0x8080808080808080, 0x2020202020202020
	i := 0
	// Thirty-two bytes at a time while they are all printable ASCII, as
	// the eight below: what most text is, scanned at a quarter of the
	// branches.
	for ; i+32 <= len(s); i += 32 {
		blk := s[i : i+32] // of a known length: no bounds checks below
		w0, w1, w2, w3 := le64(blk[0:8]), le64(blk[8:16]), le64(blk[16:24]), le64(blk[24:32])
		if ((w0|w1|w2|w3)|((w0-space)|(w1-space)|(w2-space)|(w3-space)))&high != 0 {
			break
		}
	}
	for i < len(s) {
		if i+8 <= len(s) {
			// Eight bytes at a time while they are all printable
			// ASCII: no high bit set, and none below 0x20 (subtracting
			// 0x20 from each sets the high bit of those that are).
			if w := le64(s[i : i+8]); w&high == 0 && (w-space)&high == 0 {
				i += 8
				continue
			}
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				ok = false
				break
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
			ok = false
			break
		}
		i += n
	}
	if ok {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 || c == '\t' || c == '\n' || c == '\r' {
				b.WriteByte(c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
			b.WriteRune(utf8.RuneError)
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// le64 is the first eight bytes of s as a little-endian word (one load).
func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n < 0 {
		return ""
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// decodeTransfer undoes a Content-Transfer-Encoding (RFC 2045 6). Both
// decoders are lenient: they skip what is malformed and decode a body cut
// short by a partial fetch up to where it stops.
func decodeTransfer(b []byte, enc string) []byte {
	switch enc {
	case "base64":
		return decodeBase64(b)
	case "quoted-printable":
		return decodeQP(b)
	}
	return b
}

func decodeBase64(b []byte) []byte {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '+', c == '/':
			clean = append(clean, c)
		case c == '=':
			// Padding ends the data; what follows is ignored.
			goto done
		}
	}
done:
	full := len(clean) / 4 * 4
	out := make([]byte, base64.StdEncoding.DecodedLen(len(clean))+3)
	n, _ := base64.StdEncoding.Decode(out, clean[:full])
	if rest := clean[full:]; len(rest) >= 2 {
		m, _ := base64.RawStdEncoding.Decode(out[n:], rest)
		n += m
	}
	return out[:n]
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

func isHex(c byte) bool {
	_, ok := unhex(c)
	return ok
}

func decodeQP(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '=' {
			out = append(out, c)
			continue
		}
		if i+2 < len(b) {
			hi, ok1 := unhex(b[i+1])
			lo, ok2 := unhex(b[i+2])
			if ok1 && ok2 {
				out = append(out, hi<<4|lo)
				i += 2
				continue
			}
		}
		// A soft line break: "=" then optional blanks, then CRLF or LF.
		j := i + 1
		for j < len(b) && (b[j] == ' ' || b[j] == '\t') {
			j++
		}
		switch {
		case j < len(b) && b[j] == '\n':
			i = j
		case j+1 < len(b) && b[j] == '\r' && b[j+1] == '\n':
			i = j + 1
		case j >= len(b) || len(b)-i == 2 && isHex(b[i+1]):
			i = len(b) // "=" or "=X" at the very end, as a cut-short fetch leaves it
		default:
			out = append(out, '=')
		}
	}
	return out
}

// sniffHTMLCharset returns the charset an HTML document declares in a
// <meta> tag near its start, or "".
func sniffHTMLCharset(b []byte) string {
	head := b[:min(len(b), 2048)]
	// The first "charset=" in any ASCII case, found in head itself (an
	// offset in bytes.ToLower(head) is not one in head: a byte that is
	// not UTF-8 lowers to the three of U+FFFD) by way of its "=", the
	// rarer byte.
	const name = "charset"
	if len(head) <= len(name) {
		return ""
	}
	i := len(name)
	for {
		j := bytes.IndexByte(head[i:], '=')
		if j < 0 {
			return ""
		}
		i += j + 1
		if equalFoldASCII(head[i-1-len(name):i-1], name) {
			break
		}
	}
	rest := head[i:]
	rest = bytes.TrimLeft(rest, `"' `)
	j := 0
	for j < len(rest) && j < 40 {
		if !isCharsetByte(rest[j]) {
			break
		}
		j++
	}
	return string(rest[:j])
}

// fixMetaCharset rewrites the charset declared by <meta> tags near the
// start of an HTML document to utf-8, since the document is sent
// converted to UTF-8 and phones' renderers believe the declaration.
func fixMetaCharset(s string) string {
	end := min(len(s), 4096)
	if i := indexFold(s[:end], "</head"); i >= 0 {
		end = i
	}
	var b strings.Builder
	done := 0
	for from := 0; from < end; {
		i := indexFold(s[from:end], "charset=")
		if i < 0 {
			break
		}
		start := from + i + len("charset=")
		for start < end && (s[start] == '"' || s[start] == '\'' || s[start] == ' ') {
			start++
		}
		stop := start
		for stop < end && isCharsetByte(s[stop]) {
			stop++
		}
		if stop > start && !strings.EqualFold(s[start:stop], "utf-8") {
			b.WriteString(s[done:start])
			b.WriteString("utf-8")
			done = stop
		}
		from = max(stop, start)
	}
	if done == 0 {
		return s
	}
	b.WriteString(s[done:])
	return b.String()
}

func isCharsetByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':'
}

// blockTags end a line when converting HTML to text.
var blockTags = map[string]bool{
	"br": true, "p": true, "div": true, "tr": true, "li": true, "ul": true, "ol": true,
	"table": true, "blockquote": true, "hr": true, "pre": true, "section": true,
	"article": true, "header": true, "footer": true, "dt": true, "dd": true,
	"h1": true, "h2": true, "h3": true, "h4": true, "h5": true, "h6": true,
}

// skipTags have content that is not text.
var skipTags = map[string]bool{"script": true, "style": true, "head": true, "title": true}

// htmlToText converts HTML to plain text the simple way: tags are dropped,
// block tags end lines, script, style and head are left out, entities are
// decoded and white space is collapsed. It is meant for previews and for
// phones that ask for plain text of an HTML-only message.
func htmlToText(s string) string {
	var b strings.Builder
	b.Grow(len(s) / 2)
	for len(s) > 0 {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			writeHTMLText(&b, s)
			break
		}
		writeHTMLText(&b, s[:i])
		s = s[i:]
		if strings.HasPrefix(s, "<!--") {
			if j := strings.Index(s, "-->"); j >= 0 {
				s = s[j+3:]
			} else {
				s = ""
			}
			continue
		}
		j := strings.IndexByte(s, '>')
		if j < 0 {
			break // a tag cut short by truncation
		}
		tag := s[1:j]
		s = s[j+1:]
		closing := strings.HasPrefix(tag, "/")
		tag = strings.TrimPrefix(tag, "/")
		n := 0
		for n < len(tag) && (tag[n] >= 'a' && tag[n] <= 'z' || tag[n] >= 'A' && tag[n] <= 'Z' || tag[n] >= '0' && tag[n] <= '9') {
			n++
		}
		name := strings.ToLower(tag[:n])
		switch {
		case skipTags[name] && !closing && !strings.HasSuffix(tag, "/"):
			end := indexFold(s, "</"+name)
			if end < 0 {
				s = ""
				continue
			}
			s = s[end:]
			if k := strings.IndexByte(s, '>'); k >= 0 {
				s = s[k+1:]
			} else {
				s = ""
			}
		case blockTags[name]:
			b.WriteByte('\n')
		case name == "td" || name == "th":
			if !closing {
				b.WriteByte(' ')
			}
		}
	}
	// Entities may name characters XML cannot carry (&#1;).
	return sanitize(tidyLines(b.String()))
}

// indexFold is strings.Index ignoring ASCII case of s; sub is lower case.
func indexFold(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		j := 0
		for j < len(sub) {
			c := s[i+j]
			if c >= 'A' && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != sub[j] {
				break
			}
			j++
		}
		if j == len(sub) {
			return i
		}
	}
	return -1
}

// writeHTMLText appends a run of HTML character data with entities
// decoded and white space collapsed to single spaces.
func writeHTMLText(b *strings.Builder, s string) {
	if s == "" {
		return
	}
	if strings.IndexByte(s, '&') >= 0 {
		s = html.UnescapeString(s)
	}
	space := false
	for _, r := range s {
		switch r {
		case ' ', '\t', '\n', '\r', '\f', '\u00a0':
			space = true
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	if space {
		b.WriteByte(' ')
	}
}

// tidyLines trims each line and keeps at most one empty line in a row.
func tidyLines(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	blank := 0
	for line := range strings.SplitSeq(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			blank++
			continue
		}
		if b.Len() > 0 {
			if blank > 1 {
				b.WriteString("\r\n\r\n")
			} else {
				b.WriteString("\r\n")
			}
		}
		blank = 0
		b.WriteString(line)
	}
	return b.String()
}

// textToHTML renders plain text as HTML: escaped, one <br> per line.
func textToHTML(s string) string {
	var b strings.Builder
	b.Grow(len(s) + len(s)/8 + 128)
	b.WriteString("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body>")
	first := true
	for line := range strings.SplitSeq(s, "\n") {
		if !first {
			b.WriteString("<br>\r\n")
		}
		first = false
		b.WriteString(html.EscapeString(strings.TrimSuffix(line, "\r")))
	}
	b.WriteString("</body></html>")
	return b.String()
}

// makePreview returns the first n characters of text with white space
// collapsed (MS-ASAIRS 2.2.2.31: at most 255).
func makePreview(text string, n int) string {
	n = min(n, 255)
	var b strings.Builder
	count := 0
	space := false
	for _, r := range text {
		if count >= n {
			break
		}
		switch r {
		case ' ', '\t', '\n', '\r', '\f', '\v', '\u00a0':
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			count++
			space = false
			if count >= n {
				break
			}
		}
		b.WriteRune(r)
		count++
	}
	return b.String()
}
