package mailitem

import (
	"net/mail"
	"strings"
	"testing"
)

// Fuzz targets for the fast paths of header.go, source.go and text.go,
// each against a plain version of itself: the code as it was before it
// was made fast (commit 5bb550f) or a scan without the shortcut.

// FuzzSanitizeAsReference: the word-at-a-time scans of sanitize decide
// as the byte-by-byte loop does.
func FuzzSanitizeAsReference(f *testing.F) {
	for _, s := range []string{
		"", "plain", strings.Repeat("plain text ", 8), strings.Repeat("x", 31) + "\x00", strings.Repeat("x", 32) + "\x1f",
		strings.Repeat("x", 40) + "\x7f\x80", strings.Repeat("é", 20), strings.Repeat(" ", 33) + "\uFFFE", strings.Repeat("~", 64) + "\xe2\x82",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := sanitize(s), referenceSanitize(s); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", s, got, want)
		}
	})
}

// FuzzHeaderGetAsScan: Get, which consults the set of the names present
// before it looks at the fields, finds what a scan of every field finds,
// for the names Build asks for and for every name the header has, in
// any ASCII case.
func FuzzHeaderGetAsScan(f *testing.F) {
	f.Add([]byte("From: a@x\r\nTO: b@x\r\nx-priority: 1\r\nA: 1\r\nZz-Zz: 2\r\n0: 3\r\n\r\n"), uint64(5))
	f.Add([]byte("Subject: s\r\n continued\r\nDate: Mon, 2 Jan 2006 15:04:05 -0700\r\nMessage-ID: <m@x>\r\n"), uint64(0))
	f.Add([]byte("Content-Type: text/plain\r\n@: at\r\n`: tick\r\n[: bracket\r\n{: brace\r\n~: tilde\r\n^: caret\r\n\r\n"), uint64(1<<63|7))
	f.Fuzz(func(t *testing.T, block []byte, caseBits uint64) {
		h := parseHeader(block)
		names := []string{"From", "To", "Cc", "Bcc", "Reply-To", "Sender", "Subject", "Date", "Message-Id",
			"In-Reply-To", "References", "Importance", "X-Priority", "Priority", "Content-Type",
			"Content-Transfer-Encoding", "Content-Disposition", "Content-Id", "Content-Description", "Content-Location"}
		for _, f := range h.fields {
			name := []byte(h.block[f.keyStart:f.keyEnd])
			for i, c := range name {
				if caseBits>>(i%64)&1 == 1 {
					switch {
					case 'a' <= c && c <= 'z':
						name[i] = c - 'a' + 'A'
					case 'A' <= c && c <= 'Z':
						name[i] = c - 'A' + 'a'
					}
				}
			}
			names = append(names, string(name))
		}
		for _, name := range names {
			want := ""
			for _, f := range h.fields {
				if int(f.keyEnd-f.keyStart) == len(name) && equalFoldASCII(h.block[f.keyStart:f.keyEnd], name) {
					want = unfold(h.block[f.valStart:f.end])
					break
				}
			}
			if got := h.Get(name); got != want {
				t.Errorf("Get(%q) = %q, a scan of the fields finds %q", name, got, want)
			}
		}
	})
}

// refSimpleAddress is simpleAddress as it was, collapsing the spaces of
// a name with strings.Fields.
func refSimpleAddress(v string) (address, bool) {
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
		name = strings.Join(strings.Fields(name), " ")
	}
	local, domain, ok := strings.Cut(addr, "@")
	if !ok || !dotAtom(local, "_+-") || !dotAtom(domain, "-") {
		return address{}, false
	}
	return address{Name: name, Addr: addr}, true
}

// refParseAddressList is parseAddressList as it was.
func refParseAddressList(v string) []address {
	v = strings.TrimSpace(raw8bit(truncateUTF8(v, 4*maxFieldLen)))
	if v == "" {
		return nil
	}
	if a, ok := refSimpleAddress(v); ok {
		return []address{a}
	}
	p := mail.AddressParser{WordDecoder: wordDecoder}
	if list, err := p.ParseList(v); err == nil {
		out := make([]address, 0, len(list))
		for _, a := range list {
			out = append(out, address{Name: cleanText(a.Name), Addr: cleanText(a.Address)})
		}
		return out
	}
	var out []address
	for _, piece := range splitAddresses(v) {
		piece = strings.TrimSpace(piece)
		if piece == "" {
			continue
		}
		if a, err := p.Parse(piece); err == nil {
			out = append(out, address{Name: cleanText(a.Name), Addr: cleanText(a.Address)})
			continue
		}
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

// refFormatAddresses is formatAddresses as it was, without the path for
// one bare address or name.
func refFormatAddresses(list []address, sep string) string {
	var b strings.Builder
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

// refDisplayNames is displayNames as it was, without the path for one
// name.
func refDisplayNames(list []address) string {
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

// FuzzAddressesAsOld: an address field gives the To, From, Reply-To and
// DisplayTo texts the code before the fast paths gave, whether parsed
// into a list on the stack or not.
func FuzzAddressesAsOld(f *testing.F) {
	for _, v := range []string{
		"a@example.org", "Bob <b@example.org>", "  Bob   Smith  <b@example.org>", "Bob Smith<b@example.org>",
		"<b@example.org>", "Bob", `"Smith, Bob" <b@example.org>`, "a@x, b@y", "=?utf-8?q?J=C3=B6rg?= <j@x>",
		"undisclosed-recipients:;", "\"\" <>", strings.Repeat("a", maxFieldLen+1) + "@x", strings.Repeat("n", maxFieldLen+1),
		"Bob <" + strings.Repeat("a", maxFieldLen) + "@x>",
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, v string) {
		var buf [1]address
		list := appendAddressList(buf[:0], v)
		want := refParseAddressList(v)
		if len(list) != len(want) {
			t.Fatalf("appendAddressList(%q) = %q, it was %q", v, list, want)
		}
		for i := range list {
			if list[i] != want[i] {
				t.Fatalf("appendAddressList(%q) = %q, it was %q", v, list, want)
			}
		}
		for _, sep := range []string{", ", "; ", ""} {
			if got, w := formatAddresses(list, sep), refFormatAddresses(want, sep); got != w {
				t.Errorf("formatAddresses(%q, %q) = %q, it was %q", list, sep, got, w)
			}
			if len(list) > 0 {
				if got, w := formatAddresses(list[:1], sep), refFormatAddresses(want[:1], sep); got != w {
					t.Errorf("formatAddresses(%q, %q) = %q, it was %q", list[:1], sep, got, w)
				}
			}
		}
		if got, w := displayNames(list), refDisplayNames(want); got != w {
			t.Errorf("displayNames(%q) = %q, it was %q", list, got, w)
		}
	})
}

// FuzzSniffHTMLCharset: sniffHTMLCharset, which looks for the "=" of
// "charset=", reads what a plain search of the first 2 KiB reads, and
// never cuts past their end.
func FuzzSniffHTMLCharset(f *testing.F) {
	for _, s := range []string{"", "charset=", "=charset=utf-8", "CharSet=\"koi8-r\"", "\xfbcharset=", "a=b charset = x charset='x'",
		strings.Repeat("=", 2040) + "charset=utf-8", strings.Repeat("x", 2041) + "charset=utf-8"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		head := string(b[:min(len(b), 2048)])
		want := ""
		if i := indexFold(head, "charset="); i >= 0 {
			rest := strings.TrimLeft(head[i+len("charset="):], `"' `)
			j := 0
			for j < len(rest) && j < 40 && isCharsetByte(rest[j]) {
				j++
			}
			want = rest[:j]
		}
		if got := sniffHTMLCharset(b); got != want {
			t.Errorf("sniffHTMLCharset(%q) = %q, want %q", b, got, want)
		}
	})
}
