package mailitem

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/wbxml"
)

// TestParseDraftRejects: ApplicationData that cannot become a message is
// ErrBadDraft, never a message with a broken header.
func TestParseDraftRejects(t *testing.T) {
	att := func(children ...*wbxml.Element) *wbxml.Element {
		return wbxml.E(wbxml.AirSyncBaseAttachments, wbxml.E(wbxml.AirSyncBaseAdd, children...))
	}
	for name, ad := range map[string]*wbxml.Element{
		"bad To":          wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailTo, "bob@@ <<")),
		"bad Bcc":         wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.Email2Bcc, "\"unterminated <x@y>")),
		"bad importance":  wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailImportance, "7")),
		"RTF body":        wbxml.E(wbxml.AirSyncApplicationData, wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "3"))),
		"no content":      wbxml.E(wbxml.AirSyncApplicationData, att(wbxml.T(wbxml.AirSyncBaseDisplayName, "a.txt"))),
		"bad base64":      wbxml.E(wbxml.AirSyncApplicationData, att(wbxml.T(wbxml.AirSyncBaseContent, "!!!"))),
		"bad media type":  wbxml.E(wbxml.AirSyncApplicationData, att(wbxml.T(wbxml.AirSyncBaseContent, "YQ=="), wbxml.T(wbxml.AirSyncBaseContentType, "text/"))),
		"header injected": wbxml.E(wbxml.AirSyncApplicationData, wbxml.T(wbxml.EmailTo, "bob@example.com\r\nBcc: eve@example.com")),
	} {
		if d, err := ParseDraft(ad); !errors.Is(err, ErrBadDraft) {
			t.Errorf("%s: %+v, %v; want ErrBadDraft", name, d, err)
		}
	}
}

// TestDraftCompose: the subject is RFC 2047-encoded, a CR LF in it cannot
// start a new header field, and the body keeps its bytes.
func TestDraftCompose(t *testing.T) {
	d, err := ParseDraft(wbxml.E(wbxml.AirSyncApplicationData,
		wbxml.T(wbxml.EmailTo, "Zoë <zoe@example.com>"),
		wbxml.T(wbxml.EmailSubject, "Ünïcode\r\nBcc: eve@example.com"),
		wbxml.E(wbxml.AirSyncBaseBody, wbxml.T(wbxml.AirSyncBaseType, "1"), wbxml.T(wbxml.AirSyncBaseData, "line 1\r\nline 2 with a long tail "+strings.Repeat("x", 100)+"\r\n"))))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := d.Compose("jane@example.com", time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC), "id1@easgate")
	if err != nil {
		t.Fatal(err)
	}
	src := FromBytes(raw, Meta{UID: 1})
	hdr, _ := src.Header(t.Context())
	if strings.Contains(strings.ToLower(string(hdr)), "\nbcc:") {
		t.Errorf("a Bcc field was injected:\n%s", hdr)
	}
	it, err := Build(t.Context(), src, Options{Version: "16.0"})
	if err != nil {
		t.Fatal(err)
	}
	if got := it.ApplicationData.ChildText(wbxml.EmailTo); !strings.Contains(got, "zoe@example.com") || !strings.Contains(got, "Zoë") {
		t.Errorf("To %q", got)
	}
	body := it.ApplicationData.Child(wbxml.AirSyncBaseBody).ChildText(wbxml.AirSyncBaseData)
	if want := "line 1\r\nline 2 with a long tail " + strings.Repeat("x", 100) + "\r\n"; body != want {
		t.Errorf("body %q, want %q", body, want)
	}
}
