package mailitem

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/easgate/easgate/wbxml"
	"github.com/easgate/easgate/wbxml/wbxmltest"
)

// checkItem fails t unless the item is one a phone and the schema accept:
// every text is XML-safe UTF-8, To and From fit Email.xsd, the body data
// respects the truncation size, and the tree encodes as WBXML.
func checkItem(t *testing.T, item *Item, opts Options) []byte {
	t.Helper()
	var walk func(e *wbxml.Element)
	walk = func(e *wbxml.Element) {
		if !e.IsOpaque && !xmlSafeString(e.Text) {
			t.Fatalf("%v holds text XML cannot carry: %q", e.Tag, e.Text)
		}
		for _, c := range e.Children {
			walk(c)
		}
	}
	ad := item.ApplicationData
	walk(ad)
	for _, tag := range []wbxml.Tag{wbxml.EmailTo, wbxml.EmailFrom} {
		if n := utf8.RuneCountInString(ad.ChildText(tag)); n > maxFieldLen {
			t.Fatalf("%v is %d characters, Email.xsd allows %d", tag, n, maxFieldLen)
		}
	}
	if len(opts.BodyPreferences) > 0 {
		if lim := opts.BodyPreferences[0].TruncationSize; lim > 0 {
			if n := len(ad.Child(wbxml.AirSyncBaseBody).ChildText(wbxml.AirSyncBaseData)); int64(n) > lim {
				t.Fatalf("body data is %d bytes, truncation size %d", n, lim)
			}
		}
	}
	body, err := wbxml.Marshal(syncResponse(ad))
	if err != nil {
		t.Fatalf("Marshal: %v", err)
	}
	return body
}

func xmlSafeString(s string) bool { return sanitize(s) == s }

// TestHostileMessages feeds messages built to hurt: deep nesting, huge
// headers, 8-bit headers, no header, no body, binary junk. Each must give
// a valid item.
func TestHostileMessages(t *testing.T) {
	var deep strings.Builder
	deep.WriteString("From: a@example.org\r\nSubject: deep\r\n")
	for i := range 200 {
		fmt.Fprintf(&deep, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	deep.WriteString("Content-Type: text/plain\r\n\r\nbottom\r\n")

	var manyTo strings.Builder
	manyTo.WriteString("To: ")
	for i := range 20000 {
		fmt.Fprintf(&manyTo, "\"User %d\" <user%d@example.org>, ", i, i)
	}
	manyTo.WriteString("last@example.org\r\nSubject: " + strings.Repeat("x", 1<<20) + "\r\n\r\nbody\r\n")

	var manyParts strings.Builder
	manyParts.WriteString("Content-Type: multipart/mixed; boundary=p\r\n\r\n")
	for range 5000 {
		manyParts.WriteString("--p\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n")
	}
	manyParts.WriteString("--p--\r\n")

	tests := []struct {
		name    string
		raw     string
		warning string
	}{
		{"deep nesting", deep.String(), "nested"},
		{"huge header", manyTo.String(), ""},
		{"many parts", manyParts.String(), ""},
		{"empty", "", ""},
		{"header only", "Subject: hi", ""},
		{"body only", "\r\njust a body\r\n", ""},
		{"8-bit header", "From: J\xf6rg <j@example.org>\r\nSubject: Gr\xfc\xdfe \xe2\x82\xac\r\n\r\nx", ""},
		{"binary junk", "\x00\x01\x02\xff\xfe\r\n\r\n\x00\x00\xff", ""},
		{"bad base64 and qp", "Content-Type: multipart/alternative; boundary=z\r\n\r\n--z\r\nContent-Type: text/plain; charset=klingon\r\n" +
			"Content-Transfer-Encoding: base64\r\n\r\n!!!@@@===abc\r\n--z\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=ZZ=\r\n=4\r\n--z--", ""},
		{"unterminated multipart", "Content-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nno end", ""},
		{"params junk", "Content-Type: text/plain; ;;; =x; name*0*=bad'%zz; name*99999=1; filename*=''\r\nContent-Disposition: attachment; filename*1=a\r\n\r\nx", ""},
		// An HTML part without a charset parameter whose start is not
		// UTF-8: the <meta> sniffing took an offset in a lowered copy,
		// longer than the bytes, and cut the bytes past their end.
		{"html sniffed, not utf-8", "Content-Type: text/html\r\n\r\n\xfbcharset=", ""},
		{"html sniffed, lower case longer", "Content-Type: text/html\r\n\r\n" + strings.Repeat("\xff", 200) + "<meta charset=\"iso-8859-1\">x", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, opts := range fuzzOptions {
				item, err := Build(context.Background(), FromBytes([]byte(tt.raw), Meta{UID: 7}), opts)
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				body := checkItem(t, item, opts)
				if tt.warning != "" && !strings.Contains(strings.Join(item.Warnings, "\n"), tt.warning) {
					t.Errorf("warnings %q, want one about %q", item.Warnings, tt.warning)
				}
				if opts.Version == "16.1" {
					wbxmltest.ValidateResponse(t, "SyncResponse", body)
				}
			}
		})
	}
}

// TestDeepNestingKeepsBody checks that a body nested within the depth
// limit is still found.
func TestDeepNestingKeepsBody(t *testing.T) {
	var b strings.Builder
	for i := range MaxDepth - 1 {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\r\n\r\nbottom")
	body, err := BuildBody(context.Background(), FromBytes([]byte(b.String()), Meta{}), Options{Version: "14.1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := body.ChildText(wbxml.AirSyncBaseData); got != "bottom" {
		t.Errorf("body %q, want \"bottom\"", got)
	}
}

// fuzzOptions are the option sets every fuzzed message is built with.
var fuzzOptions = []Options{
	{Version: "12.1", BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 7}}},
	{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyHTML, TruncationSize: 300, Preview: 255}}},
	{Version: "16.1", BodyPreferences: []BodyPreference{{Type: BodyPlain, Preview: 20}}, Drafts: true},
	{Version: "14.0", BodyPreferences: []BodyPreference{{Type: BodyMIME, TruncationSize: 100, AllOrNone: true}}, MIMESupport: MIMEAlways},
}

// FuzzBuild checks that no input makes FromBytes or Build panic, fail or
// produce an item that cannot be sent.
func FuzzBuild(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("Content-Type: multipart/related; boundary=a; start=\"<x>\"\r\n\r\n--a\r\nContent-ID: <x>\r\nContent-Type: text/html\r\n\r\n<p>&amp;<b\r\n--a--"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, opts := range fuzzOptions {
			item, err := Build(context.Background(), FromBytes(bytes.Clone(raw), Meta{UID: 1, Flags: []string{"\x00odd", `\Seen`}}), opts)
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			checkItem(t, item, opts)
		}
	})
}

// TestSniffHTMLCharset: the charset a <meta> declares is read at the
// offset where the declaration is, in any ASCII case, whatever bytes
// (not UTF-8, or characters whose lower case is longer or shorter)
// come before it.
func TestSniffHTMLCharset(t *testing.T) {
	tests := []struct{ html, want string }{
		{`<meta charset="utf-8">`, "utf-8"},
		{`<META HTTP-EQUIV="Content-Type" CONTENT="text/html; CHARSET=ISO-8859-1">`, "ISO-8859-1"},
		{"\xfbcharset=", ""},
		{"\xfb\xfc\xfd<meta charset=windows-1252>", "windows-1252"},
		{"\u0130\u0130<meta charset='koi8-r'>", "koi8-r"}, // İ lowers to i: shorter
		{"\u023a\u023a<meta charset='koi8-r'>", "koi8-r"}, // Ⱥ lowers to ⱥ: longer
		{"\u212a<meta charset=shift_jis>", "shift_jis"},   // the Kelvin sign lowers to k
		{"charset=", ""},
		{"charset", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := sniffHTMLCharset([]byte(tt.html)); got != tt.want {
			t.Errorf("sniffHTMLCharset(%q) = %q, want %q", tt.html, got, tt.want)
		}
	}
}
