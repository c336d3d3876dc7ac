package mailitem

import (
	"context"
	"strings"
	"testing"

	"github.com/easgate/easgate/wbxml"
)

// typicalMessage is a 20 KB newsletter-like message: multipart/mixed with
// a quoted-printable plain part, a base64 HTML part and a PDF.
func typicalMessage() []byte {
	text := bigText(6000)
	html := "<html><head><style>p{margin:0}</style></head><body><p>" + strings.ReplaceAll(text, "\r\n", "</p>\r\n<p>") + "</p></body></html>"
	pdf := strings.Repeat("%PDF-1.4 binary-ish content ", 110)
	return []byte("Return-Path: <news@example.org>\r\nMessage-ID: <bench@example.org>\r\n" +
		"Date: Tue, 05 Mar 2024 10:15:00 +0100\r\nFrom: =?UTF-8?Q?Caf=C3=A9_News?= <news@example.org>\r\n" +
		"To: Bob <bob@example.net>, Carol <carol@example.net>\r\nSubject: =?UTF-8?B?V8O2Y2hlbnRsaWNoZSBOZXVpZ2tlaXRlbg==?=\r\n" +
		"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"M\"\r\n\r\n" +
		"--M\r\nContent-Type: multipart/alternative; boundary=\"A\"\r\n\r\n" +
		"--A\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + qp(text) +
		"\r\n--A\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(html) +
		"--A--\r\n--M\r\nContent-Type: application/pdf; name=\"offer.pdf\"\r\nContent-Transfer-Encoding: base64\r\n" +
		"Content-Disposition: attachment; filename=\"offer.pdf\"\r\n\r\n" + b64(pdf) + "--M--\r\n")
}

// BenchmarkBuild converts a typical 20 KB multipart message from raw bytes
// to encoded WBXML, as a Sync Add of one message costs.
func BenchmarkBuild(b *testing.B) {
	raw := typicalMessage()
	for _, bc := range []struct {
		name string
		opts Options
	}{
		{"html-truncated-preview", Options{Version: "16.1", BodyPreferences: []BodyPreference{{Type: BodyHTML, TruncationSize: 5120, Preview: 255}}}},
		{"html-whole", Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyHTML, TruncationSize: 200000}}}},
		{"plain-truncated", Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 51200}}}},
		{"mime", Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyMIME}}}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(raw)))
			b.ReportAllocs()
			for b.Loop() {
				item, err := Build(context.Background(), FromBytes(raw, Meta{UID: 1}), bc.opts)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := wbxml.Marshal(item.ApplicationData); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBuildSmall converts the message of eas/mailsync's initial sync
// benchmark (2.5 KB of plain text, a few header fields) for a Sync Add
// with plain text cut at 500 bytes, without encoding: the per-message
// cost of an initial sync besides reading.
func BenchmarkBuildSmall(b *testing.B) {
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 40)
	raw := []byte("Return-Path: <s7@example.com>\r\nDelivered-To: alice@example.com\r\n" +
		"From: Sender 7 <s7@example.com>\r\nTo: alice@example.com\r\nSubject: message 7\r\n" +
		"Date: Mon, 02 Nov 2026 09:00:00 +0000\r\nMessage-ID: <m7@example.com>\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n")
	opts := Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 500}}}
	meta := Meta{UID: 7, Flags: []string{`\Seen`}, Size: int64(len(raw))}
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Build(context.Background(), FromBytes(raw, meta), opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSanitize checks 2.3 KB of plain text, the body of
// BenchmarkBuildSmall: every body is scanned whole to be sent as XML.
func BenchmarkSanitize(b *testing.B) {
	s := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 40) + "\r\n"
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		if sanitize(s) != s {
			b.Fatal("sanitize changed plain text")
		}
	}
}
