package mailitem

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/easgate/easgate/wbxml"
)

// TestElementCountsExact: Build and BuildBody count the elements and
// children lists of what they make before making it, and reserve just
// that: on every test message, with every set of options, nothing is
// left over and nothing had to be allocated apart.
func TestElementCountsExact(t *testing.T) {
	type message struct {
		name  string
		raw   []byte
		flags []string
	}
	var msgs []message
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test messages: %v", err)
	}
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, flags := range [][]string{nil, {`\Seen`, `\Flagged`, `\Answered`, "Work", "work", "$Junk", "Family"}, {`\Draft`, "$Forwarded"}} {
			msgs = append(msgs, message{filepath.Base(name), raw, flags})
		}
	}
	msgs = append(msgs,
		message{"sender", []byte("From: a@example.org\r\nSender: b@example.org\r\nTo: , \r\nCc: x@y, \"\" <>\r\nReply-To: r@example.org\r\nBcc: c@example.org\r\n\r\nx"), []string{`\Draft`}},
		message{"empty from", []byte("From: \"\"\r\nSender: \"\"\r\n\r\nx"), nil},
		message{"attachments", []byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
			"--b\r\nContent-Type: image/png\r\nContent-ID: <i@x>\r\nContent-Location: http://x/i.png\r\n\r\nx\r\n" +
			"--b\r\nContent-Type: image/png\r\nContent-ID: <>\r\n\r\nx\r\n--b--\r\n"), nil},
	)
	options := append([]Options{
		{Version: "12.1"}, {Version: "14.0", BodyPreferences: prefPreview}, {Version: "16.1", Drafts: true, BodyPreferences: prefHTML},
		{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 10, AllOrNone: true, Preview: 5}}},
	}, fuzzOptions...)
	for _, m := range msgs {
		for _, opts := range options {
			b := newBuilder(context.Background(), FromBytes(m.raw, Meta{UID: 3, Flags: m.flags}), opts)
			if err := b.init(); err != nil {
				t.Fatal(err)
			}
			item, err := b.item()
			if err != nil {
				t.Fatal(err)
			}
			checkReserved(t, m.name+" item", &b.el, item.ApplicationData)

			b = newBuilder(context.Background(), FromBytes(m.raw, Meta{UID: 3, Flags: m.flags}), opts)
			if err := b.init(); err != nil {
				t.Fatal(err)
			}
			body, err := b.bodyOnly()
			if err != nil {
				t.Fatal(err)
			}
			checkReserved(t, m.name+" body", &b.el, body)
		}
	}
	for _, flags := range [][]string{nil, {`\Flagged`, "Work", "$MDNSent"}, {`\Seen`, "a", "b", "c", "d", "e"}} {
		for _, v := range []string{"12.1", "14.1"} {
			var el elements
			ad := changeData(&el, flags, Options{Version: v})
			checkReserved(t, "change "+v, &el, ad)
		}
	}
}

// checkReserved fails when el has room left or had to allocate past its
// reservation while making root.
func checkReserved(t *testing.T, what string, el *elements, root *wbxml.Element) {
	t.Helper()
	if el.spilled || len(el.free) != 0 || len(el.kids) != 0 {
		t.Errorf("%s: %d elements made; reservation spilled %v, %d elements and %d children left",
			what, countTree(root), el.spilled, len(el.free), len(el.kids))
	}
}

// countTree is the number of elements in the tree under e.
func countTree(e *wbxml.Element) int {
	n := 1
	for _, c := range e.Children {
		n += countTree(c)
	}
	return n
}
