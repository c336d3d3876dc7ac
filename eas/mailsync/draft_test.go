package mailsync_test

import (
	"bytes"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-message/mail"

	"github.com/easgate/easgate/eas/mailitem"
	"github.com/easgate/easgate/eas/mailsync"
)

// TestDraftAdd: a 16.0 phone adds a draft with an attachment in Drafts.
// IMAP then holds exactly that message, flagged \Draft; the phone is not
// sent it back; the same Add repeated (under the same key or a later one)
// makes no second draft; Adds elsewhere, before 16.0 or with Send get
// Status 6 and store nothing.
func TestDraftAdd(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		if err := e.out.Create("Drafts", nil).Wait(); err != nil && !strings.Contains(err.Error(), "exists") {
			t.Fatal(err)
		}
		drafts := e.folder("Drafts")
		req := func(key string, cmds ...mailsync.Command) *mailsync.Request {
			r := e.request("3", drafts, key, 50, cmds...)
			r.Options.Item.Version = "16.0"
			r.Options.Item.Drafts = true
			r.Options.From = "alice@example.com"
			return r
		}
		p := newPhone(t, "3")
		p.apply(e.sync(req("0")))
		e.syncAll(p, drafts, 50)

		attachment := bytes.Repeat([]byte{0, 1, 2, 0xff, 'x'}, 1000)
		d := &mailitem.Draft{
			To: `"Bob B." <bob@example.com>`, Cc: "carol@example.com", Bcc: "dave@example.com",
			Subject: "Grüße", Importance: 2, BodyType: mailitem.BodyPlain, Body: "Hello Bob,\r\nsee attached.\r\n",
			Attachments: []mailitem.DraftAttachment{{ClientID: "a1", Name: "data.bin", ContentType: "application/octet-stream", Content: attachment}},
		}
		add := mailsync.Command{Kind: mailsync.CmdAdd, ClientID: "c1", Draft: d}
		key := p.key
		r := e.sync(req(key, add))
		if len(r.Responses) != 1 || r.Responses[0].Status != mailsync.StatusSuccess || r.Responses[0].ClientID != "c1" {
			t.Fatalf("responses %+v", r.Responses)
		}
		id := r.Responses[0].ServerID
		// The response is lost: the phone sends the same key and Add.
		r = e.sync(req(key, add))
		if !r.Replay || len(r.Responses) != 1 || r.Responses[0].ServerID != id {
			t.Errorf("replayed Add: replay %v, %+v, want ServerId %s", r.Replay, r.Responses, id)
		}
		uid := mailsync.ParseServerID("3", id)
		if uid == 0 {
			t.Fatalf("ServerId %q", id)
		}
		p.apply(r)
		p.items[id] = flagView(true, false)

		// What IMAP holds.
		view := e.imapView("Drafts")
		if len(view) != 1 || view[uid] == "" {
			t.Fatalf("Drafts holds %v, want only UID %d", view, uid)
		}
		msgs, err := e.out.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("FETCH: %v (%d)", err, len(msgs))
		}
		if !containsFold(msgs[0].Flags, imap.FlagDraft) {
			t.Errorf("flags %v lack \\Draft", msgs[0].Flags)
		}
		var raw []byte
		for _, b := range msgs[0].BodySection {
			raw = b.Bytes
		}
		mr, err := mail.CreateReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("stored draft does not parse: %v\n%s", err, raw)
		}
		subj, _ := mr.Header.Subject()
		from, _ := mr.Header.AddressList("From")
		to, _ := mr.Header.AddressList("To")
		bcc, _ := mr.Header.AddressList("Bcc")
		if subj != "Grüße" || len(from) != 1 || from[0].Address != "alice@example.com" ||
			len(to) != 1 || to[0].Address != "bob@example.com" || to[0].Name != "Bob B." ||
			len(bcc) != 1 || bcc[0].Address != "dave@example.com" || mr.Header.Get("Importance") != "high" {
			t.Errorf("header: subject %q from %v to %v bcc %v importance %q", subj, from, to, bcc, mr.Header.Get("Importance"))
		}
		var text string
		var got []byte
		for {
			part, err := mr.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(part.Body)
			switch h := part.Header.(type) {
			case *mail.InlineHeader:
				text = string(b)
			case *mail.AttachmentHeader:
				if name, _ := h.Filename(); name != "data.bin" {
					t.Errorf("attachment name %q", name)
				}
				got = b
			}
		}
		if text != d.Body {
			t.Errorf("body %q, want %q", text, d.Body)
		}
		if !bytes.Equal(got, attachment) {
			t.Errorf("attachment: %d bytes, differs from the %d sent", len(got), len(attachment))
		}

		// Not echoed; repeated Adds make no second draft.
		e.syncAll(p, drafts, 50)
		r = e.sync(req(p.key, add)) // the same ClientId under a later key
		if len(r.Responses) != 1 || r.Responses[0].ServerID != id || r.Responses[0].Status != mailsync.StatusSuccess {
			t.Errorf("repeated Add: %+v, want ServerId %s", r.Responses, id)
		}
		p.apply(r)
		e.syncAll(p, drafts, 50)
		p.matches(e.imapView("Drafts"))

		// Refused Adds store nothing, and the log says why.
		var logged bytes.Buffer
		e.eng.Logger = slog.New(slog.NewTextHandler(&logged, nil))
		defer func() { e.eng.Logger = nil }()
		send := *d
		send.Send = true
		old := req(p.key, mailsync.Command{Kind: mailsync.CmdAdd, ClientID: "c2", Draft: d})
		old.Options.Item.Version = "14.1"
		for name, rq := range map[string]*mailsync.Request{
			"send":     req(p.key, mailsync.Command{Kind: mailsync.CmdAdd, ClientID: "c3", Draft: &send}),
			"14.1":     old,
			"no data":  req(p.key, mailsync.Command{Kind: mailsync.CmdAdd, ClientID: "c4"}),
			"in inbox": e.request("1", e.folder("INBOX"), "0", 50),
		} {
			if name == "in inbox" {
				ip := newPhone(t, "1")
				ip.apply(e.sync(rq))
				rq = e.request("1", e.folder("INBOX"), ip.key, 50, mailsync.Command{Kind: mailsync.CmdAdd, ClientID: "c5", Draft: d})
				rq.Options.Item.Version = "16.0"
			}
			r := e.sync(rq)
			if len(r.Responses) != 1 || r.Responses[0].Status != mailsync.StatusConversionError {
				t.Errorf("%s: responses %+v, want Status 6", name, r.Responses)
			}
			if rq.Collection == "3" {
				p.apply(r)
			}
		}
		for _, why := range []string{"sending is not supported", "only 16.x drafts in Drafts", "not convertible"} {
			if !strings.Contains(logged.String(), why) {
				t.Errorf("no log line with %q:\n%s", why, logged.String())
			}
		}
		if v := e.imapView("Drafts"); len(v) != 1 {
			t.Errorf("Drafts holds %d messages after refused Adds, want 1", len(v))
		}
		if v := e.imapView("INBOX"); len(v) != 0 {
			t.Errorf("INBOX holds %d messages after a refused Add, want 0", len(v))
		}
	})
}

func containsFold(flags []imap.Flag, f imap.Flag) bool {
	for _, x := range flags {
		if strings.EqualFold(string(x), string(f)) {
			return true
		}
	}
	return false
}

// TestDraftContentChange: a Change that edits a draft's content is
// refused with Status 6 and leaves IMAP as it was (a flag Change in the
// same request is still applied).
func TestDraftContentChange(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsg("INBOX", 1, day0)
		e.appendMsg("INBOX", 2, day0)
		inbox := e.folder("INBOX")
		p := newPhone(t, "1")
		p.apply(e.sync(e.request("1", inbox, "0", 50)))
		e.syncAll(p, inbox, 50)
		yes := true
		r := e.sync(e.request("1", inbox, p.key, 50,
			mailsync.Command{Kind: mailsync.CmdChange, ServerID: "1:1", EditsContent: true, Read: &yes},
			mailsync.Command{Kind: mailsync.CmdChange, ServerID: "1:2", Read: &yes}))
		if len(r.Responses) != 1 || r.Responses[0].ServerID != "1:1" || r.Responses[0].Status != mailsync.StatusConversionError {
			t.Fatalf("responses %+v, want Change 1:1 Status 6", r.Responses)
		}
		p.apply(r)
		p.items["1:2"] = flagView(true, false)
		p.matches(e.imapView("INBOX"))
	})
}
