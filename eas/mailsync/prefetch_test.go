package mailsync_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/easgate/easgate/eas/mailitem"
	"github.com/easgate/easgate/eas/mailsync"
	"github.com/easgate/easgate/wbxml"
)

// largeMessages are larger than mailsync.WholeMessageMax, so their Adds
// are built from the planned reads of the batched read.
func largeMessages() []string {
	text := strings.Repeat("Plain text line with some words in it, é and ü.\r\n", 1200)
	html := "<html><head><style>" + strings.Repeat(".c{color:red}", 4000) + "</style></head><body>" +
		strings.Repeat("<p>Hello <b>world</b> &amp; more.</p>\r\n", 1500) + "</body></html>"
	b64 := func(s string) string {
		enc := base64.StdEncoding.EncodeToString([]byte(s))
		var b strings.Builder
		for len(enc) > 76 {
			b.WriteString(enc[:76] + "\r\n")
			enc = enc[76:]
		}
		return b.String() + enc + "\r\n"
	}
	hdr := func(subject, ct string) string {
		return "From: Big <big@example.org>\r\nTo: alice@example.com\r\nSubject: " + subject +
			"\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\nMessage-ID: <" + subject + "@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: " + ct + "\r\n"
	}
	return []string{
		hdr("plain", "text/plain; charset=utf-8") + "Content-Transfer-Encoding: 8bit\r\n\r\n" + text,
		hdr("alternative", `multipart/alternative; boundary="A"`) + "\r\n--A\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
			strings.ReplaceAll(text, "é", "=C3=A9") + "\r\n--A\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(html) + "--A--\r\n",
		hdr("htmlonly", "text/html; charset=utf-8") + "\r\n" + html,
		hdr("mixed", `multipart/mixed; boundary="M"`) + "\r\n--M\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the file.\r\n--M\r\nContent-Type: application/pdf; name=\"a.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
			b64(strings.Repeat("%PDF binary ", 5000)) + "--M--\r\n",
	}
}

// TestLargeMessagesPrefetched syncs messages larger than WholeMessageMax
// with several body preferences: every Add, built from the batched read,
// must equal the item a client Fetch builds from per-message reads.
func TestLargeMessagesPrefetched(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		msgs := largeMessages()
		for _, raw := range msgs {
			if len(raw) <= mailsync.WholeMessageMax {
				t.Fatalf("test message of %d bytes is not large", len(raw))
			}
			cmd := e.out.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: day0})
			if _, err := cmd.Write([]byte(raw)); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
		}
		inbox := e.folder("INBOX")
		prefs := [][]mailitem.BodyPreference{
			{{Type: mailitem.BodyPlain, TruncationSize: 500}},
			{{Type: mailitem.BodyPlain, TruncationSize: 100}},
			{{Type: mailitem.BodyHTML, TruncationSize: 5000, Preview: 200}},
			{{Type: mailitem.BodyPlain}},
			{{Type: mailitem.BodyMIME, TruncationSize: 1000}},
			{{Type: mailitem.BodyPlain, TruncationSize: 10, AllOrNone: true, Preview: 100}},
		}
		for i, pref := range prefs {
			coll := fmt.Sprint(10 + i)
			req := e.request(coll, inbox, "0", 50)
			req.Options.Item.BodyPreferences = pref
			key := e.sync(req).SyncKey
			req = e.request(coll, inbox, key, 50)
			req.Options.Item.BodyPreferences = pref
			r := e.sync(req)
			if len(r.Adds) != len(msgs) {
				t.Fatalf("%+v: %d adds, want %d", pref, len(r.Adds), len(msgs))
			}
			for _, add := range r.Adds {
				req := e.request(coll, inbox, r.SyncKey, 50, mailsync.Command{Kind: mailsync.CmdFetch, ServerID: add.ServerID})
				req.Options.Item.BodyPreferences = pref
				req.Options.GetChanges = false
				f := e.sync(req)
				if len(f.Responses) != 1 || f.Responses[0].Status != mailsync.StatusSuccess {
					t.Fatalf("%+v: Fetch %s: %+v", pref, add.ServerID, f.Responses)
				}
				got, want := xmlOf(t, add.Data), xmlOf(t, f.Responses[0].Data)
				if !bytes.Equal(got, want) {
					t.Errorf("%+v: Add %s differs from its Fetch:\n%s\nwant\n%s", pref, add.ServerID, got, want)
				}
			}
		}
	})
}

func xmlOf(t *testing.T, e *wbxml.Element) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := wbxml.ToXML(&buf, e); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
