package mailitem

// readHeader is how Build parsed header blocks before the header type:
// go-message's textproto.Header, each field added in place. Kept here as
// the reference the header type is tested against (TestHeaderAsReadHeader),
// itself tested against textproto.ReadHeader (TestReadHeaderAsGoMessage).

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

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
