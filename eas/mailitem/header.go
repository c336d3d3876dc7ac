package mailitem

import (
	"bytes"
	"io"
	"mime"
	"net/mail"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

// maxFieldLen bounds one decoded header value; longer ones (a To with ten
// thousand recipients) are cut, since EAS limits To and From to 32768
// characters anyway (Email.xsd).
const maxFieldLen = 32768

// wordDecoder decodes RFC 2047 encoded words in any charset go-message
// knows.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeText decodes an unstructured header value (Subject, Content-
// Description): RFC 2047 words, and raw 8-bit bytes taken as UTF-8 when
// they are, else as Windows-1252. The result is valid UTF-8 that XML can
// carry.
func decodeText(s string) string {
	s = raw8bit(truncateUTF8(s, 4*maxFieldLen))
	if strings.Contains(s, "=?") {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			s = d
		} else {
			s = decodeWordsLeniently(s)
		}
	}
	return truncateUTF8(sanitize(s), maxFieldLen)
}

// decodeWordsLeniently decodes the encoded words of s one by one, leaving
// those that do not decode as they are. mime.WordDecoder.DecodeHeader
// gives up on the whole value at the first bad word.
func decodeWordsLeniently(s string) string {
	var b strings.Builder
	prevWord := false
	for len(s) > 0 {
		i := strings.Index(s, "=?")
		if i < 0 {
			b.WriteString(s)
			break
		}
		// "=?charset?X?text?=": find the end after the charset and encoding.
		j := strings.Index(s[i+2:], "?")
		k := -1
		if j >= 0 && i+2+j+3 <= len(s) {
			k = strings.Index(s[i+2+j+3:], "?=")
		}
		if j < 0 || k < 0 {
			b.WriteString(s)
			break
		}
		end := i + 2 + j + 3 + k + 2
		word := s[i:end]
		d, err := wordDecoder.Decode(word)
		if err != nil {
			b.WriteString(s[:end])
			prevWord = false
		} else {
			// White space between two encoded words is dropped (RFC 2047 6.2).
			if !prevWord || strings.TrimSpace(s[:i]) != "" {
				b.WriteString(s[:i])
			}
			b.WriteString(d)
			prevWord = true
		}
		s = s[end:]
	}
	return b.String()
}

// raw8bit returns s as UTF-8: unchanged when it already is, else read as
// Windows-1252, the usual charset of unlabelled 8-bit headers.
func raw8bit(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return string(toUTF8([]byte(s), "windows-1252"))
}

// toUTF8 converts b from charset cs to UTF-8. An unknown charset is
// treated as UTF-8 when b is valid UTF-8, else as Windows-1252.
func toUTF8(b []byte, cs string) []byte {
	cs = strings.ToLower(strings.Trim(strings.TrimSpace(cs), `"'`))
	switch cs {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return b
	}
	r, err := charset.Reader(cs, bytes.NewReader(b))
	if err != nil {
		if utf8.Valid(b) {
			return b
		}
		if r, err = charset.Reader("windows-1252", bytes.NewReader(b)); err != nil {
			return b
		}
	}
	out, err := io.ReadAll(r)
	if err != nil && len(out) == 0 {
		return b
	}
	return out
}

// parseParamField parses a header field of the form
// "value; a=1; b*=utf-8”x" leniently (RFC 2045 5.1, RFC 2231). The value
// is returned in lower case and the parameters decoded. Malformed
// parameters are skipped; duplicates keep the first.
func parseParamField(s string) (string, map[string]string) {
	s = raw8bit(s)
	value, rest, _ := strings.Cut(s, ";")
	value = strings.ToLower(strings.TrimSpace(value))
	var buf [8]param
	raw := buf[:0]
	for rest != "" {
		var key string
		key, rest, _ = strings.Cut(rest, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if i := strings.LastIndexByte(key, ';'); i >= 0 {
			key = strings.TrimSpace(key[i+1:]) // "junk; key=v"
		}
		rest = strings.TrimLeft(rest, " \t\r\n")
		var v string
		if strings.HasPrefix(rest, `"`) {
			i := 1
			for ; i < len(rest) && rest[i] != '"' && rest[i] != '\\'; i++ {
			}
			v = rest[1:i] // no quoted pair: the text as it is
			if i < len(rest) && rest[i] == '\\' {
				var b strings.Builder
				b.WriteString(v)
				for ; i < len(rest) && rest[i] != '"'; i++ {
					if rest[i] == '\\' && i+1 < len(rest) {
						i++
					}
					b.WriteByte(rest[i])
				}
				v = b.String()
			}
			rest = rest[min(i+1, len(rest)):]
			_, rest, _ = strings.Cut(rest, ";")
		} else {
			v, rest, _ = strings.Cut(rest, ";")
			v = strings.TrimSpace(v)
		}
		if key == "" || strings.ContainsAny(key, " \t\"") {
			continue
		}
		if !slices.ContainsFunc(raw, func(p param) bool { return p.key == key }) {
			raw = append(raw, param{key, v})
		}
	}
	return value, decodeParamList(raw)
}

// param is one parameter of a header field, as written.
type param struct {
	key, value string
}

// decodeParams joins and decodes RFC 2231 parameters ("name*0*",
// "name*1", "name*") and RFC 2047 words found in plain values (which many
// mailers send against RFC 2047 5). Keys are lower case in the result.
func decodeParams(raw map[string]string) map[string]string {
	if len(raw) == 0 {
		return nil
	}
	list := make([]param, 0, len(raw))
	for k, v := range raw {
		list = append(list, param{k, v})
	}
	return decodeParamList(list)
}

// decodeParamList is decodeParams over a list of parameters with
// distinct keys.
func decodeParamList(raw []param) map[string]string {
	if len(raw) == 0 {
		return nil
	}
	type piece struct {
		n       int
		encoded bool
		v       string
	}
	out := make(map[string]string, len(raw))
	var split map[string][]piece
	for _, p := range raw {
		k, v := strings.ToLower(p.key), p.value
		name, sect, hasStar := strings.Cut(k, "*")
		if !hasStar {
			if _, ok := out[k]; !ok {
				if k == "boundary" {
					out[k] = v // compared byte for byte with the body
				} else {
					out[k] = decodeText(v)
				}
			}
			continue
		}
		if split == nil {
			split = make(map[string][]piece)
		}
		p := piece{v: v}
		switch {
		case sect == "":
			p.encoded = true
		default:
			num, star := strings.CutSuffix(sect, "*")
			n, err := strconv.Atoi(num)
			if err != nil || n < 0 || n > 999 {
				continue
			}
			p.n, p.encoded = n, star
		}
		split[name] = append(split[name], p)
	}
	for name, ps := range split {
		sort.Slice(ps, func(i, j int) bool { return ps[i].n < ps[j].n })
		cs := ""
		var b []byte
		for i, p := range ps {
			v := p.v
			if p.encoded {
				if i == 0 {
					parts := strings.SplitN(v, "'", 3)
					if len(parts) == 3 {
						cs, v = parts[0], parts[2]
					}
				}
				if u, err := url.PathUnescape(strings.ReplaceAll(v, "+", "%2B")); err == nil {
					v = u
				}
			}
			b = append(b, v...)
		}
		// An RFC 2231 value wins over a plain one of the same name.
		out[name] = truncateUTF8(sanitize(string(toUTF8(b, cs))), maxFieldLen)
	}
	return out
}

// address is one parsed mailbox.
type address struct {
	Name, Addr string
}

// parseAddressList parses an address header leniently: RFC 5322 first,
// then a comma split where each piece is parsed alone, keeping what is
// not an address as a name only.
func parseAddressList(v string) []address { return appendAddressList(nil, v) }

// appendAddressList is parseAddressList appending to dst, so that a
// caller can keep the list of a field on its stack.
func appendAddressList(dst []address, v string) []address {
	v = strings.TrimSpace(raw8bit(truncateUTF8(v, 4*maxFieldLen)))
	if v == "" {
		return dst
	}
	if a, ok := simpleAddress(v); ok {
		return append(dst, a)
	}
	p := mail.AddressParser{WordDecoder: wordDecoder}
	if list, err := p.ParseList(v); err == nil {
		out := slices.Grow(dst, len(list))
		for _, a := range list {
			out = append(out, address{Name: cleanText(a.Name), Addr: cleanText(a.Address)})
		}
		return out
	}
	out := dst
	for _, piece := range splitAddresses(v) {
		piece = strings.TrimSpace(piece)
		if piece == "" {
			continue
		}
		if a, err := p.Parse(piece); err == nil {
			out = append(out, address{Name: cleanText(a.Name), Addr: cleanText(a.Address)})
			continue
		}
		// "Name <addr>" with a malformed address, or a bare word.
		name, addr := piece, ""
		if i := strings.LastIndexByte(piece, '<'); i >= 0 {
			if j := strings.IndexByte(piece[i:], '>'); j > 0 {
				name, addr = strings.TrimSpace(piece[:i]), strings.TrimSpace(piece[i+1:i+j])
			}
		}
		name = strings.Trim(decodeText(name), `" `)
		if addr == "" && strings.Contains(name, "@") && !strings.ContainsAny(name, " \t") {
			name, addr = "", name
		}
		out = append(out, address{Name: name, Addr: cleanText(addr)})
	}
	return out
}

// simpleAddress parses the commonest address fields without net/mail
// (which was a fifth of the time spent building an item): one
// "addr@domain" or "Name Words <addr@domain>" where the name is letters,
// digits and spaces and the address a plain dot-atom. It gives what
// net/mail gives for those (tested against it); anything else is not ok.
func simpleAddress(v string) (address, bool) {
	name, addr := "", v
	if strings.HasSuffix(v, ">") {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return address{}, false
		}
		name, addr = v[:i], v[i+1:len(v)-1]
		for j := 0; j < len(name); j++ {
			if c := name[j]; !(isAlnum(c) || c == ' ') {
				return address{}, false
			}
		}
		name = collapseSpaces(name)
	}
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || !dotAtom(local, "_+-") || !dotAtom(domain, "-") {
		return address{}, false
	}
	return address{Name: name, Addr: addr}, true
}

// collapseSpaces is strings.Join(strings.Fields(s), " ") for s of
// letters, digits and spaces: s itself, trimmed, when no two spaces are
// next to each other, as in nearly every display name.
func collapseSpaces(s string) string {
	s = strings.Trim(s, " ")
	if !strings.Contains(s, "  ") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// dotAtom reports whether s is atoms of letters, digits and extra joined
// by single dots.
func dotAtom(s, extra string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '.' && strings.IndexByte(extra, c) < 0 {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// splitAddresses splits an address list at commas outside quotes, angle
// brackets and comments.
func splitAddresses(s string) []string {
	var out []string
	quoted, angle, paren, start := false, false, 0, 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			angle = true
		case c == '>':
			angle = false
		case c == '(':
			paren++
		case c == ')' && paren > 0:
			paren--
		case (c == ',' || c == ';') && !angle && paren == 0:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// cleanText makes s XML-safe and removes line breaks.
func cleanText(s string) string {
	s = sanitize(s)
	if strings.ContainsAny(s, "\r\n\t") {
		s = strings.Join(strings.Fields(s), " ")
	}
	return s
}

// formatAddress writes a mailbox as phones parse it: "Name" <addr>, or
// the bare address without a name.
func formatAddress(b *strings.Builder, a address) {
	switch {
	case a.Name != "" && a.Addr != "":
		b.WriteByte('"')
		for _, r := range a.Name {
			if r == '"' || r == '\\' {
				b.WriteByte('\\')
			}
			b.WriteRune(r)
		}
		b.WriteString(`" <`)
		b.WriteString(a.Addr)
		b.WriteByte('>')
	case a.Addr != "":
		b.WriteString(a.Addr)
	default:
		b.WriteString(a.Name)
	}
}

// formatAddresses joins a list with sep, cut to maxFieldLen at an address
// boundary.
func formatAddresses(list []address, sep string) string {
	if len(list) == 1 && (list[0].Name == "" || list[0].Addr == "") {
		// A bare address or a bare name is written as it is: no copy.
		s := list[0].Addr
		if s == "" {
			s = list[0].Name
		}
		if len(s) > maxFieldLen {
			return ""
		}
		return s
	}
	var b strings.Builder
	n := 0
	for _, a := range list {
		n += len(a.Name) + len(a.Addr) + len(sep) + len(`"" <>`)
	}
	b.Grow(min(n, maxFieldLen+1))
	for _, a := range list {
		n := b.Len()
		if n > 0 {
			b.WriteString(sep)
		}
		formatAddress(&b, a)
		if b.Len() > maxFieldLen {
			return b.String()[:n]
		}
	}
	return b.String()
}

// displayNames joins the display names of list (the address where there
// is no name) with "; ", as DisplayTo wants (MS-ASEMAIL 2.2.2.27).
func displayNames(list []address) string {
	if len(list) == 1 {
		// One name, as it is: no copy.
		name := list[0].Name
		if name == "" {
			name = list[0].Addr
		}
		if len(name) > maxFieldLen {
			return ""
		}
		return name
	}
	var b strings.Builder
	for _, a := range list {
		name := a.Name
		if name == "" {
			name = a.Addr
		}
		if name == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		if b.Len()+len(name) > maxFieldLen {
			break
		}
		b.WriteString(name)
	}
	return b.String()
}

// importance maps Importance, X-Priority and Priority to EAS Importance
// (MS-ASEMAIL 2.2.2.40): 0 low, 1 normal, 2 high.
func importance(importanceField, xPriority, priority string) int {
	switch strings.ToLower(strings.TrimSpace(importanceField)) {
	case "high":
		return 2
	case "low":
		return 0
	case "normal":
		return 1
	}
	if xp := strings.TrimSpace(xPriority); xp != "" {
		switch xp[0] {
		case '1', '2':
			return 2
		case '4', '5':
			return 0
		case '3':
			return 1
		}
	}
	switch strings.ToLower(strings.TrimSpace(priority)) {
	case "urgent":
		return 2
	case "non-urgent":
		return 0
	}
	return 1
}

// replyPrefixes are the reply and forward markers stripped for
// ThreadTopic, in lower case, without the colon.
var replyPrefixes = []string{"re", "fw", "fwd", "aw", "wg", "sv", "vs", "tr", "rif", "antw", "odp", "vb"}

// threadTopic strips leading reply and forward markers ("Re:", "Fwd:",
// "AW:", "Re[2]:") from a subject.
func threadTopic(subject string) string {
	s := strings.TrimSpace(subject)
	for {
		i := strings.IndexAny(s, ":：")
		if i <= 0 || i > 8 {
			return s
		}
		word := strings.ToLower(strings.TrimSpace(s[:i]))
		if j := strings.IndexByte(word, '['); j > 0 && strings.HasSuffix(word, "]") {
			word = word[:j]
		}
		known := false
		for _, p := range replyPrefixes {
			if word == p {
				known = true
				break
			}
		}
		if !known {
			return s
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		s = strings.TrimSpace(s[i+size:])
	}
}

// firstMessageID returns the first <id> of a Message-ID, In-Reply-To or
// References value, without brackets, or "".
func firstMessageID(v string) string {
	rest := v
	for {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i:], '>')
		if j < 0 {
			break
		}
		if id := strings.TrimSpace(rest[i+1 : i+j]); id != "" {
			return id
		}
		rest = rest[i+j+1:]
	}
	// No <id>: the first word after the last complete one, as
	// messageIDs takes it.
	if f := strings.Fields(rest); len(f) > 0 {
		return f[0]
	}
	return ""
}
