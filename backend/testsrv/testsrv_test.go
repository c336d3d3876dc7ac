package testsrv

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/easgate/easgate/backend/testsrv/testproc"
)

const testMessage = "From: alice@example.org\r\n" +
	"To: bob@example.org\r\n" +
	"Subject: harness\r\n" +
	"Message-ID: <harness-1@example.org>\r\n" +
	"\r\n" +
	"Hello from the test harness.\r\n" +
	".leading dot survives\r\n"

// appendMessage appends testMessage to INBOX and returns the APPENDUID data.
func appendMessage(t *testing.T, c *imapclient.Client) *imap.AppendData {
	t.Helper()
	cmd := c.Append("INBOX", int64(len(testMessage)), nil)
	if _, err := cmd.Write([]byte(testMessage)); err != nil {
		t.Fatalf("APPEND write: %v", err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("APPEND close: %v", err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("APPEND: %v", err)
	}
	return data
}

// fetchBody returns BODY.PEEK[] of uid in the selected mailbox.
func fetchBody(t *testing.T, c *imapclient.Client, uid imap.UID) []byte {
	t.Helper()
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("UID FETCH %d: %v", uid, err)
	}
	if len(msgs) != 1 {
		t.Fatalf("UID FETCH %d: %d messages, want 1", uid, len(msgs))
	}
	return msgs[0].FindBodySection(section)
}

// listAttrs returns LIST "" "*" RETURN (SPECIAL-USE) as mailbox → attributes.
func listAttrs(t *testing.T, c *imapclient.Client) map[string][]imap.MailboxAttr {
	t.Helper()
	list, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	got := make(map[string][]imap.MailboxAttr)
	for _, l := range list {
		got[l.Mailbox] = l.Attrs
	}
	return got
}

func TestDovecot(t *testing.T) {
	d := StartDovecot(t, nil)
	c1 := d.Dial(t, "alice")

	attrs := listAttrs(t, c1)
	want := map[string]imap.MailboxAttr{
		"Drafts": imap.MailboxAttrDrafts,
		"Sent":   imap.MailboxAttrSent,
		"Trash":  imap.MailboxAttrTrash,
		"Junk":   imap.MailboxAttrJunk,
	}
	if len(attrs) != 5 {
		t.Errorf("LIST returned %v, want INBOX and the four special-use folders", attrs)
	}
	if _, ok := attrs["INBOX"]; !ok {
		t.Errorf("LIST has no INBOX: %v", attrs)
	}
	for name, attr := range want {
		if !slices.Contains(attrs[name], attr) {
			t.Errorf("LIST %s attributes %v lack %s", name, attrs[name], attr)
		}
	}

	appended := appendMessage(t, c1)
	if appended.UID != 1 || appended.UIDValidity == 0 {
		t.Fatalf("APPENDUID = %+v, want uid 1 and a UIDVALIDITY", appended)
	}

	statusOpts := &imap.StatusOptions{NumMessages: true, HighestModSeq: true}
	before, err := c1.Status("INBOX", statusOpts).Wait()
	if err != nil {
		t.Fatalf("STATUS: %v", err)
	}
	if *before.NumMessages != 1 || before.HighestModSeq != 2 {
		t.Fatalf("STATUS before STORE: messages %d, HIGHESTMODSEQ %d; want 1, 2", *before.NumMessages, before.HighestModSeq)
	}

	sel, err := c1.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatalf("SELECT (CONDSTORE): %v", err)
	}
	if sel.NumMessages != 1 || sel.HighestModSeq != 2 {
		t.Fatalf("SELECT (CONDSTORE): %d messages, HIGHESTMODSEQ %d; want 1, 2", sel.NumMessages, sel.HighestModSeq)
	}
	if got := fetchBody(t, c1, appended.UID); !bytes.Equal(got, []byte(testMessage)) {
		t.Errorf("fetched body differs:\n got %q\nwant %q", got, testMessage)
	}
	if err := c1.Unselect().Wait(); err != nil {
		t.Fatalf("UNSELECT: %v", err)
	}

	// A second connection changes a flag; the modseq must move by one.
	c2 := d.Dial(t, "alice")
	if _, err := c2.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("second connection SELECT: %v", err)
	}
	stored, err := c2.Store(imap.UIDSetNum(appended.UID), &imap.StoreFlags{
		Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true,
	}, nil).Collect()
	if err != nil {
		t.Fatalf("UID STORE +FLAGS: %v", err)
	}
	if len(stored) != 0 {
		t.Errorf("silent STORE returned %d FETCH responses", len(stored))
	}

	after, err := c1.Status("INBOX", statusOpts).Wait()
	if err != nil {
		t.Fatalf("STATUS after STORE: %v", err)
	}
	if after.HighestModSeq != 3 {
		t.Errorf("HIGHESTMODSEQ after STORE = %d, want 3 (was %d)", after.HighestModSeq, before.HighestModSeq)
	}

	for user, want := range map[string]int{"alice": 2, "bob": 0} {
		n, err := d.ConnectionCount(user)
		if err != nil {
			t.Fatalf("ConnectionCount(%s): %v", user, err)
		}
		if n != want {
			t.Errorf("ConnectionCount(%s) = %d, want %d", user, n, want)
		}
	}
}

func TestDovecotBadPassword(t *testing.T) {
	d := StartDovecot(t, map[string]string{"dave": "davepw"})
	c, err := imapclient.DialInsecure(d.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Login("dave", "wrong").Wait()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeNo {
		t.Fatalf("LOGIN with a wrong password: %v, want a NO response", err)
	}
}

func TestDovecotStop(t *testing.T) {
	var addr, dir string
	var pid int
	t.Run("own instance", func(t *testing.T) {
		d := StartDovecot(t, map[string]string{"erin": "erinpw"})
		d.Dial(t, "erin")
		addr, dir, pid = d.Addr, d.Dir, d.PID
	})
	testproc.CheckGone(t, addr, dir, pid)
}

func TestDovecotKill(t *testing.T) {
	d, err := Launch(Options{Users: map[string]string{"frank": "frankpw"}})
	if err != nil {
		t.Fatal(err)
	}
	d.Kill()
	if err := d.Stop(); err != nil {
		t.Errorf("Stop after Kill: %v", err)
	}
	testproc.CheckGone(t, d.Addr, d.Dir, d.PID)
}

func TestDovecotMissingBinary(t *testing.T) {
	_, err := Launch(Options{Binary: "/nonexistent/dovecot"})
	if !errors.Is(err, ErrDovecotMissing) {
		t.Fatalf("Launch with a missing binary: %v, want ErrDovecotMissing", err)
	}
	if !strings.Contains(err.Error(), "apt-get install -y dovecot-imapd") {
		t.Errorf("error %q does not name the package to install", err)
	}
}

func TestCountWho(t *testing.T) {
	out := "username                          proto pid   ip       \n" +
		"alice                             imap  22644 127.0.0.1\n" +
		"alice                             imap  22645 127.0.0.1\n" +
		"alicea                            imap  22646 127.0.0.1\n"
	for user, want := range map[string]int{"alice": 2, "alicea": 1, "bob": 0, "username": 0} {
		if got := countWho(out, user); got != want {
			t.Errorf("countWho(%q) = %d, want %d", user, got, want)
		}
	}
}

func TestMemIMAP(t *testing.T) {
	m := StartMemIMAP(t, nil)
	c := m.Dial(t, "bob")

	attrs := listAttrs(t, c)
	var names []string
	for name := range attrs {
		names = append(names, name)
	}
	slices.Sort(names)
	if want := []string{"Drafts", "INBOX", "Junk", "Sent", "Trash"}; !slices.Equal(names, want) {
		t.Errorf("LIST = %v, want %v", names, want)
	}

	appended := appendMessage(t, c)
	if appended.UID != 1 {
		t.Errorf("APPENDUID uid = %d, want 1", appended.UID)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	if sel.NumMessages != 1 {
		t.Errorf("SELECT: %d messages, want 1", sel.NumMessages)
	}
	if got := fetchBody(t, c, appended.UID); !bytes.Equal(got, []byte(testMessage)) {
		t.Errorf("fetched body differs:\n got %q\nwant %q", got, testMessage)
	}
	if c.Caps().Has(imap.CapCondStore) {
		t.Errorf("memory server advertises CONDSTORE; the no-CONDSTORE path would go untested")
	}
	if m.User("bob") == nil || m.User("nobody") != nil {
		t.Errorf("User lookup: bob=%v nobody=%v", m.User("bob"), m.User("nobody"))
	}

	bad, err := imapclient.DialInsecure(m.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if err := bad.Login("bob", "wrong").Wait(); err == nil {
		t.Errorf("LOGIN with a wrong password succeeded")
	}
}

func TestSMTPSink(t *testing.T) {
	tests := []struct {
		name     string
		users    map[string]string
		auth     sasl.Client
		wantUser string
	}{
		{name: "open", users: nil},
		{name: "auth plain", users: DefaultUsers(), auth: sasl.NewPlainClient("", "carol", "carolpw"), wantUser: "carol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := StartSMTPSink(t, tt.users)
			c, err := smtp.Dial(sink.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tt.auth != nil {
				if err := c.Auth(tt.auth); err != nil {
					t.Fatalf("AUTH: %v", err)
				}
			}
			to := []string{"bob@example.org", "dan@example.org"}
			if err := c.SendMail("alice@example.org", to, strings.NewReader(testMessage)); err != nil {
				t.Fatalf("SendMail: %v", err)
			}
			if err := c.Quit(); err != nil {
				t.Fatalf("QUIT: %v", err)
			}
			msgs := sink.WaitFor(t, 1)
			if len(msgs) != 1 {
				t.Fatalf("%d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.From != "alice@example.org" || !slices.Equal(m.To, to) || m.AuthUser != tt.wantUser {
				t.Errorf("envelope = from %q to %q auth %q; want %q %q %q", m.From, m.To, m.AuthUser, "alice@example.org", to, tt.wantUser)
			}
			if !bytes.Equal(m.Data, []byte(testMessage)) {
				t.Errorf("data differs:\n got %q\nwant %q", m.Data, testMessage)
			}
		})
	}
}

func TestSMTPSinkRequiresAuth(t *testing.T) {
	sink := StartSMTPSink(t, DefaultUsers())
	c, err := smtp.Dial(sink.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Mail("alice@example.org", nil)
	var smtpErr *smtp.SMTPError
	if !errors.As(err, &smtpErr) || smtpErr.Code != 530 {
		t.Fatalf("MAIL without AUTH: %v, want 530", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "carol", "wrong")); err == nil {
		t.Errorf("AUTH with a wrong password succeeded")
	}
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("sink holds %d messages, want 0", n)
	}
}

func TestCountWhoAll(t *testing.T) {
	out := "username                          proto pid   ip       \n" +
		"alice                             imap  22644 127.0.0.1\n" +
		"alice                             imap  22645 127.0.0.1\n" +
		"bob                               imap  22646 127.0.0.1\n" +
		"bob                               pop3  22647 127.0.0.1\n"
	got := countWhoAll(out)
	if len(got) != 2 || got["alice"] != 2 || got["bob"] != 1 {
		t.Errorf("countWhoAll = %v, want alice 2, bob 1", got)
	}
}

// TestDovecotConfig checks that Options.Config overrides the generated
// configuration (here the per-user connection limit) and that
// ConnectionCounts sees every user's sessions.
func TestDovecotConfig(t *testing.T) {
	d, err := Launch(Options{Config: "protocol imap {\n  mail_max_userip_connections = 2\n}"})
	if errors.Is(err, ErrDovecotMissing) {
		t.Fatal(err.Error())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Error(err)
		}
	})
	d.Dial(t, "alice")
	d.Dial(t, "alice")
	d.Dial(t, "bob")
	c, err := imapclient.DialInsecure(d.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", d.Users["alice"]).Wait(); err == nil || !strings.Contains(err.Error(), "Maximum number of connections") {
		t.Errorf("third login of alice: %v, want the connection limit", err)
	}
	counts, err := d.ConnectionCounts()
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 2 || counts["alice"] != 2 || counts["bob"] != 1 {
		t.Errorf("ConnectionCounts = %v, want alice 2, bob 1", counts)
	}
}
