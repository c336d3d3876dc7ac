package mailsync_test

import (
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/easgate/easgate/eas/mailsync"
)

// TestConflict: a phone marks read a message that webmail flagged since
// the phone's last Sync. With the default Conflict 1 (server wins) the
// Change is refused with Status 7, IMAP keeps the server's flags, and the
// server's version reaches the phone; with Conflict 0 the phone's Change
// is applied on top. A Change of a message the server left alone is
// applied either way.
func TestConflict(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsgs("INBOX", 1, 3, day0)
		inbox := e.folder("INBOX")
		p := newPhone(t, "1")
		p.apply(e.sync(e.request("1", inbox, "0", 50)))
		e.syncAll(p, inbox, 50)

		e.store("INBOX", 1, imap.StoreFlagsAdd, imap.FlagFlagged)
		yes := true
		r := e.sync(e.request("1", inbox, p.key, 50,
			mailsync.Command{Kind: mailsync.CmdChange, ServerID: "1:1", Read: &yes},
			mailsync.Command{Kind: mailsync.CmdChange, ServerID: "1:2", Read: &yes},
		))
		if len(r.Responses) != 1 || r.Responses[0].ServerID != "1:1" || r.Responses[0].Status != mailsync.StatusConflict {
			t.Fatalf("responses %+v, want Change 1:1 Status 7 only", r.Responses)
		}
		p.apply(r)
		p.items["1:2"] = flagView(true, false)
		if got := e.imapView("INBOX")[1]; got != flagView(false, true) {
			t.Errorf("IMAP has message 1 as %s: the refused Change was applied", got)
		}
		e.syncAll(p, inbox, 50)
		p.matches(e.imapView("INBOX")) // the server's flag reached the phone

		// Client wins: the phone's Change is applied over the server's.
		e.store("INBOX", 3, imap.StoreFlagsAdd, imap.FlagFlagged)
		req := e.request("1", inbox, p.key, 50, mailsync.Command{Kind: mailsync.CmdChange, ServerID: "1:3", Read: &yes})
		req.Options.ClientWins = true
		r = e.sync(req)
		for _, rs := range r.Responses {
			t.Errorf("client wins: response %+v", rs)
		}
		p.apply(r)
		if got := e.imapView("INBOX")[3]; got != flagView(true, true) {
			t.Errorf("IMAP has message 3 as %s, want read and flagged", got)
		}
		e.syncAll(p, inbox, 50)
		p.matches(e.imapView("INBOX"))
	})
}
