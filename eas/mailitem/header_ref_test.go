package mailitem

// readHeader is how Build parsed header blocks before the header type:
// go-message's textproto.Header, each field added in place. Kept here as
// the reference the header type is tested against (TestHeaderAsReadHeader),
// itself tested against textproto.ReadHeader (TestReadHeaderAsGoMessage).

import (
	"bytes"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
)

// readHeader parses a header block leniently, as go-message's
// textproto.ReadHeader does — the same fields, values and order, and, at
// the first malformed line (one without a colon or with a bad key), the
// fields before it kept — but in place: each field is a slice of b, where
// ReadHeader copies every line into a fresh 256-byte buffer behind a
// 4 KiB reader, which made header parsing most of the garbage of building
// a Sync window. b must not be modified while the header is in use.
func readHeader(b []byte) textproto.Header {
	var h textproto.Header
	if len(b) == 0 || b[0] == ' ' || b[0] == '\t' {
		return h // ReadHeader refuses a first line that is a continuation
	}
	if b[len(b)-1] != '\n' {
		// The last line ends with the block (a message that is all
		// header): end it as ReadHeader's reader did.
		b = append(slices.Clip(b), '\r', '\n')
	}
	var buf [32][]byte
	fields := buf[:0]
	for rest := b; len(rest) > 0; {
		end := lineEnd(rest, 0)
		if isBlankLine(rest[:end]) {
			break // the empty line that ends the header
		}
		for end < len(rest) && (rest[end] == ' ' || rest[end] == '\t') {
			end = lineEnd(rest, end) // folded: continuation lines
		}
		kv := rest[:end]
		rest = rest[end:]
		colon := bytes.IndexByte(kv, ':')
		if colon < 0 {
			break
		}
		key := bytes.Trim(kv[:colon], " \t")
		if bytes.ContainsFunc(key, func(r rune) bool { return r < '!' || r > '~' || r == ':' }) {
			break
		}
		if len(key) > 0 {
			fields = append(fields, kv)
		}
	}
	// ReadHeader keeps the fields last first, and Get gives the first
	// of a name: add them in that order.
	for i := len(fields) - 1; i >= 0; i-- {
		h.AddRaw(fields[i])
	}
	return h
}

// headerNames are the fields Build and FromBytes look up.
var headerNames = []string{
	"To", "Cc", "From", "Subject", "Reply-To", "Importance", "X-Priority", "Priority", "Sender",
	"Bcc", "Date", "References", "In-Reply-To", "Message-Id", "Content-Type", "Content-Id",
	"Content-Description", "Content-Transfer-Encoding", "Content-Disposition", "Content-Location",
}

// TestHeaderAsReadHeader: the header type gives, for every name, what
// Get of the textproto.Header readHeader builds gives, on hand-picked
// and random blocks (folding, bare CR and LF, bad keys, case, repeated
// fields).
func TestHeaderAsReadHeader(t *testing.T) {
	blocks := []string{
		"", "Subject: hi", "Subject: hi\r\n", "subject:hi\n", "SUBJECT : \t hi \t \r\n",
		"To: a\r\nto: b\r\nTO: c\r\n", "Subject: folded\r\n  over\r\n\tthree lines\r\nTo: x\r\n",
		"Subject: \r\n \r\n x\r\n", "Subject:\r\n", "Subject: v\r", "Subject: v\r\r\n", "Subject: a\rb\r\n",
		" To: x\r\n", "To: x\r\nno colon\r\nCc: y\r\n", "To: x\r\nBad Key: y\r\nCc: z\r\n",
		"To: x\r\n: empty key\r\nCc: z\r\n", "Sub(ject: odd key\r\nSubject: real\r\n",
		"Content-type: text/plain; charset=utf-8\r\nCONTENT-TRANSFER-ENCODING: base64\r\n",
		"Message-ID: <a@b>\r\n\r\nIn-Reply-To: <after@blank>\r\n", "X-Priority: 1\n\tfolded\n",
		"Date: Mon, 2 Jan 2006 15:04:05 -0700\r\nT\xc3\xa9: bad\r\nFrom: late\r\n",
	}
	r := rand.New(rand.NewPCG(9, 10))
	keys := append(slices.Clone(headerNames), "subject", "TO", "content-TYPE", "x-a", "Sub(ject", "T\xc3\xa9", "Bad Key", "")
	pieces := []string{" ", "\t", ":", ": ", "v", "\r\n", "\n", "\r", "\r\n ", "\n\t", "é", "\x00", "a b", "=?x?="}
	for range 5000 {
		var b []byte
		for range 1 + r.IntN(16) {
			if r.IntN(3) == 0 {
				b = append(b, keys[r.IntN(len(keys))]...)
			} else {
				b = append(b, pieces[r.IntN(len(pieces))]...)
			}
		}
		blocks = append(blocks, string(b))
	}
	for _, blk := range blocks {
		want := readHeader([]byte(blk))
		got := parseHeader([]byte(blk))
		names := slices.Clone(headerNames)
		for f := want.Fields(); f.Next(); {
			if k := f.Key(); validName(k) {
				names = append(names, k, strings.ToLower(k), strings.ToUpper(k))
			}
		}
		for _, name := range names {
			if g, w := got.Get(name), want.Get(name); g != w {
				t.Errorf("parseHeader(%q).Get(%q) = %q, readHeader gives %q", blk, name, g, w)
			}
		}
	}
}

// validName reports whether k is a field name Get may be asked for:
// letters, digits and "-" only.
func validName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; !isAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

// messageIDs returns the <id> tokens of v, without brackets: how
// firstMessageID found the first one before it stopped at it (its
// reference in TestFirstMessageID).
func messageIDs(v string) []string {
	var out []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			break
		}
		if id := strings.TrimSpace(v[i+1 : i+j]); id != "" {
			out = append(out, id)
		}
		v = v[i+j+1:]
	}
	if len(out) == 0 {
		if f := strings.Fields(v); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}

// TestFirstMessageID: firstMessageID gives the first of messageIDs, on
// hand-picked and random values.
func TestFirstMessageID(t *testing.T) {
	values := []string{"", "<a@b>", " <a@b> <c@d>", "<> <c@d>", "< >x y", "<a", "a b", "<a@b", "x <a@b> y", "<a@b>> z", ">a<"}
	r := rand.New(rand.NewPCG(11, 12))
	pieces := []string{"<", ">", " ", "a", "@", "b", "\t", "\r\n "}
	for range 5000 {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		values = append(values, b.String())
	}
	for _, v := range values {
		want := ""
		if ids := messageIDs(v); len(ids) > 0 {
			want = ids[0]
		}
		if got := firstMessageID(v); got != want {
			t.Errorf("firstMessageID(%q) = %q, want %q", v, got, want)
		}
	}
}

// referenceParamField is parseParamField as it was before it collected
// the parameters in a list: into a map, with a builder for every quoted
// value.
func referenceParamField(s string) (string, map[string]string) {
	s = raw8bit(s)
	value, rest, _ := strings.Cut(s, ";")
	value = strings.ToLower(strings.TrimSpace(value))
	raw := make(map[string]string)
	for rest != "" {
		var key string
		key, rest, _ = strings.Cut(rest, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if i := strings.LastIndexByte(key, ';'); i >= 0 {
			key = strings.TrimSpace(key[i+1:])
		}
		rest = strings.TrimLeft(rest, " \t\r\n")
		var v string
		if strings.HasPrefix(rest, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(rest) && rest[i] != '"'; i++ {
				if rest[i] == '\\' && i+1 < len(rest) {
					i++
				}
				b.WriteByte(rest[i])
			}
			v = b.String()
			rest = rest[min(i+1, len(rest)):]
			_, rest, _ = strings.Cut(rest, ";")
		} else {
			v, rest, _ = strings.Cut(rest, ";")
			v = strings.TrimSpace(v)
		}
		if key == "" || strings.ContainsAny(key, " \t\"") {
			continue
		}
		if _, dup := raw[key]; !dup {
			raw[key] = v
		}
	}
	return value, decodeParams(raw)
}

// TestParseParamFieldAsReference: parseParamField gives what the map
// version gave, on hand-picked and random fields.
func TestParseParamFieldAsReference(t *testing.T) {
	fields := []string{
		"", "text/plain", "text/plain; charset=utf-8", `TEXT/Plain; Charset="UTF-8"; format=flowed`,
		`attachment; filename="a \"b\" c.pdf"`, `attachment; filename="trailing\`, `x; a="unclosed`,
		"x; name*0*=utf-8''caf%C3%A9; name*1=.txt", "x; a=1; A=2; a=3", "x; junk; b=2", `x; "q"=1; c d=2`,
	}
	r := rand.New(rand.NewPCG(13, 14))
	// No "*" at random: RFC 2231 pieces of one name with the same
	// number are joined in an order the map left to chance.
	pieces := []string{";", "=", `"`, `\`, " ", "a", "B", "0", "'", "%C3", "=?utf-8?q?x?=", "\t", "name", "charset"}
	for range 20000 {
		var b strings.Builder
		for range r.IntN(16) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		fields = append(fields, b.String())
	}
	for _, f := range fields {
		wv, wp := referenceParamField(f)
		gv, gp := parseParamField(f)
		if gv != wv || !maps.Equal(gp, wp) {
			t.Errorf("parseParamField(%q) = %q %q, want %q %q", f, gv, gp, wv, wp)
		}
	}
}

// TestParseCommonDate: where parseCommonDate takes a date, it gives what
// time.Parse(rfc5322Date) gives — the instant, the zone offset and
// whether it is the local zone — on hand-picked and random dates.
func TestParseCommonDate(t *testing.T) {
	values := []string{
		"Mon, 2 Jan 2006 15:04:05 -0700", "Mon, 02 Jan 2006 15:04:05 +0000", "Sat, 29 Feb 2024 23:59:59 +1400",
		"Sun, 29 Feb 2023 00:00:00 +0000", "Tue, 31 Apr 2026 10:00:00 +0100", "Wed, 0 Jan 2026 10:00:00 +0100",
		"Thu, 1 Jan 1970 00:00:00 +0530", "Fri, 31 Dec 9999 23:59:59 -2359", "mon, 2 Jan 2006 15:04:05 -0700",
		"Mon, 2 jan 2006 15:04:05 -0700", "Mon, 2 Jan 2006 24:00:00 +0000", "Mon, 2 Jan 2006 15:04:05 +2400",
		"Mon, 2 Jan 2006 15:04:05 +0060", "Mon, 2 Jan 2006 15:04:05 GMT", "Mon, 2 Jan 2006 15:04:05 -0700 (PDT)",
		"Mon,  2 Jan 2006 15:04:05 -0700", "Mon, 123 Jan 2006 15:04:05 -0700", "Mon, 2 Jan 06 15:04:05 -0700",
		"Mon, 2 Jan 2006 5:04:05 -0700", "Mon, 2 Jan 2006 15:04:05.123 -0700", "", "Mon, ",
		"Sat, 1 Jan 0000 00:00:00 +0000", "Tue, 29 Feb 0000 12:00:00 -0100", "Wed, 1 Mar 0000 00:00:00 +0000",
	}
	r := rand.New(rand.NewPCG(15, 16))
	alphabet := "0123456789 :+-,JanFebMon"
	for range 50000 {
		d := time.Unix(r.Int64N(400<<30), 0).In(time.FixedZone("", (r.IntN(57)-28)*1800))
		b := []byte(d.Format(rfc5322Date))
		for range r.IntN(3) {
			b[r.IntN(len(b))] = alphabet[r.IntN(len(alphabet))]
		}
		values = append(values, string(b))
	}
	taken := 0
	for _, v := range values {
		got, ok := parseCommonDate(v)
		if !ok {
			continue
		}
		taken++
		want, err := time.Parse(rfc5322Date, v)
		_, goff := got.Zone()
		_, woff := want.Zone()
		if err != nil || !got.Equal(want) || goff != woff || (got.Location() == time.Local) != (want.Location() == time.Local) {
			t.Errorf("parseCommonDate(%q) = %v; time.Parse: %v, %v", v, got, want, err)
		}
	}
	if taken < 10000 {
		t.Errorf("only %d dates took the fast path", taken)
	}
}
