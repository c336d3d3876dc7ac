package mailitem

// The fast paths of building an item (readHeader, parseDate, formatDate,
// sanitize's word-at-a-time scan, simpleAddress) against the slower code
// they stand in for.

import (
	"bufio"
	"bytes"
	"math/rand/v2"
	"net/mail"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
)

// referenceHeader is how readHeader used to parse: go-message's
// textproto.ReadHeader over the block and an empty line.
func referenceHeader(b []byte) textproto.Header {
	if len(b) == 0 {
		return textproto.Header{}
	}
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(append(slices.Clip(b), '\r', '\n'))))
	return h
}

// headerView lists a header's fields in its order, and what Get gives
// for each name.
func headerView(h textproto.Header) (fields, gets []string) {
	f := h.Fields()
	for f.Next() {
		fields = append(fields, f.Key()+"="+f.Value())
		gets = append(gets, f.Key()+"="+h.Get(f.Key()))
	}
	return fields, gets
}

// TestReadHeaderAsGoMessage: readHeader gives what textproto.ReadHeader
// gives — fields, order, values, first-of-a-name, and where a malformed
// line stops it — on hand-picked and on random header blocks.
func TestReadHeaderAsGoMessage(t *testing.T) {
	blocks := []string{
		"",
		"Subject: hi\r\n",
		"Subject: hi",
		"Subject: hi\n",
		"From: a@b\r\nTo: c@d\r\nSubject: one\r\nSubject: two\r\n",
		"Subject: folded\r\n  over\r\n\tthree lines\r\nTo: x\r\n",
		"Subject: lf only\n folded\nTo: y\n",
		" leading space: no\r\nTo: x\r\n",
		"\tleading tab: no\r\n",
		"To: x\r\nno colon here\r\nCc: y\r\n",
		"To: x\r\nBad Key: y\r\nCc: z\r\n",
		"To: x\r\n: empty key\r\nCc: z\r\n",
		"To: x\r\n\r\nCc: after the blank line\r\n",
		"To: x\r\n\nCc: after a bare LF blank line\r\n",
		"To: x\r\r\nCc: y\r\n",
		"X-Trailing-CR: v\r",
		"x-lower-case: v\r\nCONTENT-TYPE: text/plain\r\n",
		"Key : spaced key\r\nKey2:no space\r\n",
		"Folded-Key\r\n : v\r\nTo: x\r\n",
		"Subject: =?utf-8?q?caf=C3=A9?=\r\n",
		"Subject: \xff\xfe 8-bit\r\nT\xc3\xa9: bad key\r\n",
		"To: x\r\n \r\nCc: y\r\n",
		"A: 1\r\nB: 2\r\nA: 3\r\nB: 4\r\n",
	}
	r := rand.New(rand.NewPCG(7, 8))
	pieces := []string{"To", "Cc", "Subject", "X-A", " ", "\t", ":", ": ", "v", "\r\n", "\n", "\r", "\r\n ", "\n\t", "é", "\x00", "a b", "=?x?="}
	for range 3000 {
		var b []byte
		for range 1 + r.IntN(14) {
			b = append(b, pieces[r.IntN(len(pieces))]...)
		}
		blocks = append(blocks, string(b))
	}
	for _, blk := range blocks {
		wf, wg := headerView(referenceHeader([]byte(blk)))
		gf, gg := headerView(readHeader([]byte(blk)))
		if !slices.Equal(gf, wf) || !slices.Equal(gg, wg) {
			t.Errorf("readHeader(%q):\n fields %q\n gets   %q\nwant\n fields %q\n gets   %q", blk, gf, gg, wf, wg)
		}
	}
}

// TestParseDate: the fast path gives what net/mail.ParseDate gives, for
// the common layout and for the ones it leaves to ParseDate (after
// obsDate).
func TestParseDate(t *testing.T) {
	for _, v := range []string{
		"Mon, 02 Jan 2006 15:04:05 -0700",
		"Tue, 3 Feb 2026 01:02:03 +0100",
		"Fri, 27 Nov 2026 23:59:59 +0000",
		"Wed, 31 Dec 1969 23:59:59 -1200",
		"Sun, 1 Mar 2026 12:00:00 +1400",
		"Mon, 02 Jan 2006 15:04:05 -0700 (MST)",
		"2 Jan 2006 15:04:05 -0700",
		"Mon, 2 Jan 06 15:04 GMT",
		"Thu, 20 Nov 1997 09:55:06 MDT",
		" Mon, 02 Jan 2006 15:04:05 -0700",
		"Mon, 02 Jan 2006 15:04:05 -0700\r\n",
		"Mon, 32 Jan 2006 15:04:05 -0700",
		"yesterday",
		"",
	} {
		want, werr := mail.ParseDate(v)
		if n, ok := obsDate(v); ok {
			// The obsolete syntax is read as RFC 5322 4.3 means it
			// (TestObsoleteDates), then as net/mail reads the result.
			want, werr = mail.ParseDate(n)
		}
		got, err := parseDate(v)
		if (err == nil) != (werr == nil) || !got.Equal(want) || got.Format(rfc5322Date) != want.Format(rfc5322Date) {
			t.Errorf("parseDate(%q) = %v, %v; net/mail: %v, %v", v, got, err, want, werr)
		}
	}
}

// referenceSanitize is sanitize without the word-at-a-time scan.
func referenceSanitize(s string) string {
	var b strings.Builder
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

// TestSanitizeAsReference: sanitize gives what the byte-by-byte version
// gives wherever in a long run of plain text a bad byte sits, in the
// 32-byte scan, the 8-byte one or the byte-by-byte tail.
func TestSanitizeAsReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	odd := []string{"\x00", "\x1f", "\x7f", "\x80", "\xff", "\t", "\r\n", "é", "\uFFFE", "\uFFFF", "\U0001F600", "\xe2\x82", " ", "~"}
	for range 5000 {
		b := []byte(strings.Repeat("plain text ", 1+r.IntN(12))) // past the 32-byte scan
		for range r.IntN(4) {
			i := r.IntN(len(b) + 1)
			b = slices.Insert(b, i, []byte(odd[r.IntN(len(odd))])...)
		}
		if got, want := sanitize(string(b)), referenceSanitize(string(b)); got != want {
			t.Fatalf("sanitize(%q) = %q, want %q", b, got, want)
		}
	}
}

// TestSimpleAddressAsNetMail: where simpleAddress takes a field, it gives
// what the net/mail path of parseAddressList gives.
func TestSimpleAddressAsNetMail(t *testing.T) {
	fields := []string{
		"alice@example.com", "Alice <alice@example.com>", "Sender 1 <s1@example.com>",
		"  Two   Spaces  <a.b@c.d>", "<bare@example.org>", "a+b_c-d@x-y.example", "Alice<a@b>",
		"a@b", "a@@b", "a.@b", ".a@b", "a..b@c", "a@b.", "Alice <a@b", "Alice a@b>", "<>",
		"Alice <a@b> x", "O'Brien <o@b>", "Dr. Who <who@b>", "=?utf-8?q?x?= <a@b>", "a@b, c@d",
		"Ünï <a@b>", "a@[1.2.3.4]", `"Quoted" <a@b>`, "(comment) a@b", "x <a b@c>",
	}
	r := rand.New(rand.NewPCG(5, 6))
	pick := func(alphabet string, n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 20000 {
		addr := pick("ab1._+-", 1+r.IntN(6)) + "@" + pick("ab1.-", 1+r.IntN(6))
		switch r.IntN(4) {
		case 0:
			fields = append(fields, addr)
		case 1:
			fields = append(fields, pick("aZ1  ", r.IntN(9))+"<"+addr+">")
		case 2:
			fields = append(fields, pick("aZ1 .'\"(),;:<>@", r.IntN(9))+"<"+addr+">"+pick(" >", r.IntN(2)))
		default:
			fields = append(fields, pick("ab1 .@<>-_+'\"(),;:", 1+r.IntN(16)))
		}
	}
	p := mail.AddressParser{WordDecoder: wordDecoder}
	taken := 0
	for _, f := range fields {
		v := strings.TrimSpace(f)
		got, ok := simpleAddress(v)
		if !ok {
			continue
		}
		taken++
		list, err := p.ParseList(v)
		if err != nil || len(list) != 1 || cleanText(list[0].Name) != got.Name || cleanText(list[0].Address) != got.Addr {
			t.Errorf("simpleAddress(%q) = %+v; net/mail: %v, %v", v, got, list, err)
		}
	}
	if taken < 100 {
		t.Errorf("only %d fields took the fast path", taken)
	}
}

// TestFormatDateAsTimeFormat: formatDate writes what time.Format with the
// EAS layout writes, for instants in every zone, across the years it
// keeps, and falls back to the epoch outside them.
func TestFormatDateAsTimeFormat(t *testing.T) {
	const layout = "2006-01-02T15:04:05.000Z"
	times := []time.Time{
		{}, time.Unix(0, 0), time.Unix(0, 999999999), time.Unix(-1, 0),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(0, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("", -3600)),
		time.Date(2026, 11, 2, 9, 0, 0, 1000000, time.FixedZone("", 5*3600+1800)),
	}
	r := rand.New(rand.NewPCG(17, 18))
	for range 20000 {
		sec := r.Int64N(2*253402300800) - 62135596800 - 86400
		times = append(times, time.Unix(sec, r.Int64N(1e9)).In(time.FixedZone("", (r.IntN(57)-28)*1800)))
	}
	for _, tm := range times {
		want := tm.UTC()
		if want.Year() < 1 || want.Year() > 9999 {
			want = time.Unix(0, 0).UTC()
		}
		if got := formatDate(tm); got != want.Format(layout) {
			t.Errorf("formatDate(%v) = %q, want %q", tm, got, want.Format(layout))
		}
	}
}

// TestDateArithmetic: the calendar arithmetic of commonDate gives what
// the time package gives, for every day of years at the edges of the
// Gregorian rules and of the range a Date can write.
func TestDateArithmetic(t *testing.T) {
	for _, year := range []int{0, 1, 4, 100, 399, 400, 1600, 1900, 1969, 1970, 1999, 2000, 2024, 2026, 2100, 9999} {
		for month := 1; month <= 12; month++ {
			want := time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
			if got := daysIn(month, year); got != want {
				t.Errorf("daysIn(%d, %d) = %d, want %d", month, year, got, want)
			}
			for day := 1; day <= want; day++ {
				want := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC).Unix() / 86400
				if got := daysSinceEpoch(year, month, day); got != want {
					t.Fatalf("daysSinceEpoch(%d, %d, %d) = %d, want %d", year, month, day, got, want)
				}
			}
		}
	}
}
