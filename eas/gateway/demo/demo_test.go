package demo

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/mail"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

var seedTime = time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)

func start(t *testing.T) *Mail {
	t.Helper()
	m, err := Start(Options{Password: "demopass", Now: seedTime})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func login(t *testing.T, m *Mail, user string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(m.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, "demopass").Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	return c
}

func count(t *testing.T, c *imapclient.Client, mbox string) uint32 {
	t.Helper()
	st, err := c.Status(mbox, &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil {
		t.Fatalf("STATUS %s: %v", mbox, err)
	}
	return *st.NumMessages
}

func TestSeededMailbox(t *testing.T) {
	m := start(t)
	c := login(t, m, "demo@example.com")

	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Mailbox)
	}
	for _, want := range Folders {
		if !strings.Contains(" "+strings.Join(names, " ")+" ", " "+want+" ") {
			t.Errorf("folder %s missing from LIST %v", want, names)
		}
	}

	want := map[string]uint32{}
	for _, msg := range Messages() {
		want[msg.Folder]++
	}
	var total uint32
	for _, f := range Folders {
		if got := count(t, c, f); got != want[f] {
			t.Errorf("%s holds %d messages, want %d", f, got, want[f])
		}
		total += want[f]
	}
	if total != 20 {
		t.Errorf("seed holds %d messages, want 20", total)
	}

	// Every INBOX message parses, its subject decodes back to the seed's,
	// and the flags are the seed's.
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
		Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var seeds []Message
	for _, s := range Messages() {
		if s.Folder == "INBOX" {
			seeds = append(seeds, s)
		}
	}
	if len(msgs) != len(seeds) {
		t.Fatalf("fetched %d INBOX messages, want %d", len(msgs), len(seeds))
	}
	for i, fm := range msgs {
		s := seeds[i]
		raw := fm.FindBodySection(&imap.FetchItemBodySection{})
		mr, err := mail.CreateReader(bytes.NewReader(raw))
		if err != nil {
			t.Fatalf("message %d (%s) does not parse: %v", i, s.Subject, err)
		}
		subj, err := mr.Header.Subject()
		if err != nil || subj != s.Subject {
			t.Errorf("message %d subject %q (%v), want %q", i, subj, err, s.Subject)
		}
		if !isASCII(s.Subject) && !bytes.Contains(raw, []byte("Subject: =?utf-8?")) {
			t.Errorf("non-ASCII subject %q is not RFC 2047 encoded", s.Subject)
		}
		var attachments []string
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: part: %v", s.Subject, err)
			}
			if ah, ok := p.Header.(*mail.AttachmentHeader); ok {
				name, _ := ah.Filename()
				body, _ := io.ReadAll(p.Body)
				attachments = append(attachments, name)
				for _, a := range s.Attachments {
					if a.Name == name && !bytes.Equal(a.Data, body) {
						t.Errorf("%s: attachment %s differs after the round trip", s.Subject, name)
					}
				}
			}
		}
		if len(attachments) != len(s.Attachments) {
			t.Errorf("%s: attachments %v, want %d", s.Subject, attachments, len(s.Attachments))
		}
		if !sameFlags(fm.Flags, s.Flags) {
			t.Errorf("%s: flags %v, want %v", s.Subject, fm.Flags, s.Flags)
		}
	}
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func sameFlags(got, want []imap.Flag) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			if strings.EqualFold(string(g), string(w)) {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func TestPDFAndPNGAreWellFormed(t *testing.T) {
	pdf := demoPDF("Invoice (test)")
	if !bytes.HasPrefix(pdf, []byte("%PDF-1.4\n")) || !bytes.HasSuffix(pdf, []byte("%%EOF\n")) {
		t.Errorf("PDF framing wrong:\n%s", pdf)
	}
	// The xref offsets point at the objects.
	i := bytes.Index(pdf, []byte("xref\n"))
	lines := strings.Split(string(pdf[i:]), "\n")
	for n := 1; n <= 5; n++ {
		off, err := strconv.Atoi(lines[2+n][:10]) // zero-padded decimal
		if err != nil {
			t.Fatal(err)
		}
		if want := []byte(strconv.Itoa(n) + " 0 obj"); !bytes.HasPrefix(pdf[off:], want) {
			t.Errorf("xref entry %d points at %q", n, pdf[off:off+10])
		}
	}
	if png := demoPNG(); !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		t.Error("PNG signature missing")
	}
}

func TestSMTPDelivers(t *testing.T) {
	m := start(t)
	alex := login(t, m, "alex@example.com")
	before := count(t, alex, "INBOX")

	c, err := smtp.Dial(m.SMTPAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Without AUTH nothing is accepted.
	if err := c.Mail("demo@example.com", nil); err == nil {
		t.Fatal("MAIL without AUTH accepted")
	}
	if err := c.Auth(sasl.NewPlainClient("", "demo@example.com", "wrong")); err == nil {
		t.Fatal("AUTH with a wrong password accepted")
	}
	if err := c.Auth(sasl.NewPlainClient("", "demo@example.com", "demopass")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("demo@example.com", nil); err != nil {
		t.Fatal(err)
	}
	var se *smtp.SMTPError
	if err := c.Rcpt("someone@elsewhere.example", nil); !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("RCPT to an outside address = %v, want 550", err)
	}
	if err := c.Rcpt("Alex@Example.com", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "From: demo@example.com\r\nTo: alex@example.com\r\nSubject: hello\r\n\r\nhi\r\n")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := count(t, alex, "INBOX"); got != before+1 {
		t.Errorf("alex's INBOX holds %d messages after delivery, want %d", got, before+1)
	}
}
