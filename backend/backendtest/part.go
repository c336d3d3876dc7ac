package backendtest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
)

// Binary returns n bytes of test content with every byte value (a
// xorshift sequence): attachments that only a byte-exact transfer
// reproduces.
func Binary(n int) []byte {
	b := make([]byte, n)
	x := uint32(88172645)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// partsMessage is the message OpenPart is tested on, and what each leaf
// part decodes to.
type partsMessage struct {
	raw     []byte
	decoded map[string][]byte // section -> decoded body
	enc     map[string]string // section -> Content-Transfer-Encoding
}

// newPartsMessage builds a multipart/mixed message: 1 a 7bit text, 2 a
// base64 attachment of bin (76-character lines), 3 a quoted-printable
// text, 4 a nested multipart whose 4.1 is a base64 image and 4.2 an 8bit
// text, 5 a message/rfc822 whose body (5.1) is quoted-printable.
func newPartsMessage(bin []byte) partsMessage {
	m := partsMessage{decoded: map[string][]byte{}, enc: map[string]string{}}
	var b strings.Builder
	b.WriteString("From: Alice Example <alice@example.org>\r\nTo: Bob <bob@example.org>\r\n" +
		"Subject: Parts\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <parts@example.org>\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"OUTER\"\r\n\r\n")
	leaf := func(sec, boundary, ctype, enc string, body []byte) {
		fmt.Fprintf(&b, "--%s\r\nContent-Type: %s\r\nContent-Transfer-Encoding: %s\r\n\r\n", boundary, ctype, enc)
		b.WriteString(encodeBody(enc, body))
		b.WriteString("\r\n")
		m.decoded[sec], m.enc[sec] = body, enc
	}
	leaf("1", "OUTER", "text/plain; charset=us-ascii", "7bit", []byte("Plain words.\r\nSecond line."))
	leaf("2", "OUTER", "application/octet-stream; name=\"blob.bin\"", "base64", bin)
	leaf("3", "OUTER", "text/plain; charset=utf-8", "quoted-printable",
		[]byte(strings.Repeat("Grüße = 100 % — a long line that quoted-printable has to break softly. ", 40)+"\r\nend=\r\n"))
	b.WriteString("--OUTER\r\nContent-Type: multipart/mixed; boundary=\"INNER\"\r\n\r\n")
	leaf("4.1", "INNER", "image/png", "base64", bin[:1000])
	leaf("4.2", "INNER", "text/plain; charset=utf-8", "8bit", []byte("Ünïcödé in 8bit."))
	b.WriteString("--INNER--\r\n")
	b.WriteString("--OUTER\r\nContent-Type: message/rfc822\r\n\r\n" +
		"From: carol@example.net\r\nSubject: Inner\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	inner := []byte("Forwarded = text, ß.")
	b.WriteString(encodeBody("quoted-printable", inner) + "\r\n")
	m.decoded["5.1"], m.enc["5.1"] = inner, "quoted-printable"
	b.WriteString("--OUTER--\r\n")
	m.raw = []byte(b.String())
	return m
}

// encodeBody encodes body for a message, with CRLF line ends.
func encodeBody(enc string, body []byte) string {
	switch enc {
	case "base64":
		s := base64.StdEncoding.EncodeToString(body)
		var b strings.Builder
		for len(s) > 76 {
			b.WriteString(s[:76] + "\r\n")
			s = s[76:]
		}
		b.WriteString(s)
		return b.String()
	case "quoted-printable":
		var q bytes.Buffer
		w := quotedprintable.NewWriter(&q)
		w.Write(body)
		w.Close()
		return strings.ReplaceAll(strings.ReplaceAll(q.String(), "\r\n", "\n"), "\n", "\r\n")
	default:
		return string(body)
	}
}

// decodeBody undoes enc with the standard library, as a reference.
func decodeBody(t *testing.T, enc string, raw []byte) []byte {
	t.Helper()
	var r io.Reader = bytes.NewReader(raw)
	switch enc {
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, r)
	case "quoted-printable":
		r = quotedprintable.NewReader(r)
	}
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("decoding %s: %v", enc, err)
	}
	return out
}

// readPart opens a part, checks its sizes against want and returns what it
// read.
func readPart(t *testing.T, sess backend.Session, f backend.FolderID, uid backend.UID, part string, opts backend.PartOptions, total int64) []byte {
	t.Helper()
	r, err := sess.OpenPart(t.Context(), f, uid, part, opts)
	if err != nil {
		t.Fatalf("OpenPart(%s, %+v): %v", part, opts, err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		r.Close()
		t.Fatalf("OpenPart(%s, %+v): reading: %v", part, opts, err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("OpenPart(%s, %+v): Close: %v", part, opts, err)
	}
	if n := r.Size(); n != -1 && n != int64(len(got)) {
		t.Errorf("OpenPart(%s, %+v): Size %d, read %d bytes", part, opts, n, len(got))
	}
	if n := r.Total(); n != -1 && n != total {
		t.Errorf("OpenPart(%s, %+v): Total %d, want %d", part, opts, n, total)
	}
	return got
}

func (s *suite) testOpenPart(t *testing.T) {
	ctx := t.Context()
	out := s.h.Outside(t)
	out.CreateFolder("Parts")
	msg := newPartsMessage(Binary(300_000))
	u := out.Append("Parts", msg.raw, nil, time.Now())
	sess := s.session(t)
	f := folderNamed(t, sess, "Parts").ID

	for _, sec := range []string{"1", "2", "3", "4.1", "4.2", "5.1"} {
		t.Run("part "+sec, func(t *testing.T) {
			want := msg.decoded[sec]
			raw, err := sess.Section(ctx, f, u, sec, 0, 0)
			if err != nil {
				t.Fatalf("Section(%s): %v", sec, err)
			}
			if ref := decodeBody(t, msg.enc[sec], raw); !bytes.Equal(ref, want) {
				t.Fatalf("the reference decoding of Section(%s) differs from what was appended (%d bytes, want %d)", sec, len(ref), len(want))
			}
			total := int64(len(want))
			if got := readPart(t, sess, f, u, sec, backend.PartOptions{}, total); !bytes.Equal(got, want) {
				t.Errorf("decoded: %d bytes differ from the %d appended", len(got), len(want))
			}
			if got := readPart(t, sess, f, u, sec, backend.PartOptions{Raw: true}, int64(len(raw))); !bytes.Equal(got, raw) {
				t.Errorf("raw: %q differs from Section's %q", trim(got), trim(raw))
			}
			for _, rg := range []struct{ off, limit int64 }{
				{0, 1}, {0, 10}, {3, 7}, {total / 2, 0}, {total - 1, 0}, {total - 2, 100},
				{total, 0}, {total + 10, 5}, {0, total + 100},
			} {
				from := min(rg.off, total)
				to := total
				if rg.limit > 0 {
					to = min(from+rg.limit, total)
				}
				got := readPart(t, sess, f, u, sec, backend.PartOptions{Offset: rg.off, Limit: rg.limit}, total)
				if !bytes.Equal(got, want[from:to]) {
					t.Errorf("range %d+%d: %q, want %q", rg.off, rg.limit, trim(got), trim(want[from:to]))
				}
			}
		})
	}

	// Closing before the end, or before reading at all, keeps the
	// session usable; reading after Close fails.
	for _, n := range []int{0, 1, 100_000} {
		r, err := sess.OpenPart(ctx, f, u, "2", backend.PartOptions{})
		if err != nil {
			t.Fatalf("OpenPart: %v", err)
		}
		if n > 0 {
			if _, err := io.ReadFull(r, make([]byte, n)); err != nil {
				t.Fatalf("reading %d bytes: %v", n, err)
			}
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Close after %d bytes: %v", n, err)
		}
		if _, err := r.Read(make([]byte, 10)); err == nil {
			t.Error("Read after Close succeeded")
		}
		if _, err := sess.Section(ctx, f, u, "1", 0, 0); err != nil {
			t.Fatalf("Section after closing a part reader at %d bytes: %v", n, err)
		}
	}
	if flags := out.Messages("Parts")[u]; backend.HasFlag(flags, backend.FlagSeen) {
		t.Errorf("OpenPart set \\Seen: %q", flags)
	}

	_, err := sess.OpenPart(ctx, f, u+100, "2", backend.PartOptions{})
	wantErr(t, "OpenPart of a missing message", err, backend.ErrMessageNotFound)
	for _, bad := range []string{"", "x", "0", "9", "2.1", "4", "4.3", "1.MIME", "HEADER", "TEXT", "1..2"} {
		_, err := sess.OpenPart(ctx, f, u, bad, backend.PartOptions{})
		wantErr(t, fmt.Sprintf("OpenPart(%q)", bad), err, backend.ErrInvalidSection)
	}
	_, err = sess.OpenPart(ctx, f, u, "2", backend.PartOptions{Offset: -1})
	wantErr(t, "OpenPart at a negative offset", err, backend.ErrInvalidSection)

	// A message expunged by someone else.
	u2 := out.Append("Parts", msg.raw, nil, time.Now())
	out.Expunge("Parts", u2)
	_, err = sess.OpenPart(ctx, f, u2, "2", backend.PartOptions{})
	wantErr(t, "OpenPart of an expunged message", err, backend.ErrMessageNotFound)
	if _, err := sess.Folders(ctx); err != nil {
		t.Fatalf("Folders after a failed OpenPart: %v", err)
	}
}

// trim shortens b for a failure message.
func trim(b []byte) []byte {
	if len(b) > 60 {
		return append(b[:60:60], "..."...)
	}
	return b
}

// RunOpenPart runs only the OpenPart tests, for a server variant the
// whole suite is not meant for (an IMAP server without BINARY, where the
// backend decodes parts itself).
func RunOpenPart(t *testing.T, h Harness) {
	(&suite{h: h}).testOpenPart(t)
}
