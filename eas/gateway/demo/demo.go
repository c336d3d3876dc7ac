// Package demo is the mail system behind `easgate demo`: an in-memory IMAP
// server (go-imap's imapmemserver) holding seeded demo accounts, and an SMTP
// submission server (go-smtp) that delivers into the recipients' INBOX in
// that same memory. With it, the gateway can be tried, from a phone or from
// tests, without Dovecot, Postfix or any file on disk.
//
// The seed data (seed.go) is small and readable on purpose: twenty messages
// that exercise what EAS clients render — plain text, HTML,
// multipart/alternative, attachments, RFC 2047 subjects, threads, and read,
// flagged and answered state — across the default folders and a nested
// user folder.
//
// The memory server has no CONDSTORE and announces no SPECIAL-USE
// attributes (see /work/shared/reference/go-deps-notes.md §2.3); the demo
// is for trying the gateway, not for testing sync state.
package demo

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Account is one demo login. User is also the account's email address.
type Account struct {
	User     string
	Password string
}

// Options configure Start.
type Options struct {
	// Password is the password of both demo accounts; "" generates one.
	Password string
	// Now dates the seeded messages (each is Message.Age older); zero
	// means time.Now().
	Now time.Time
	// Logger receives the servers' errors and the delivery log; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Mail is the running demo mail system. Close stops it.
type Mail struct {
	// Accounts are the seeded logins: demo@example.com first, then
	// alex@example.com.
	Accounts []Account
	// IMAPAddr and SMTPAddr are the loopback addresses the servers listen
	// on (no TLS; plaintext AUTH is allowed on loopback only).
	IMAPAddr, SMTPAddr string

	mem   *imapmemserver.Server
	users map[string]*imapmemserver.User // by lower-cased user name
	pass  map[string]string
	imap  *imapserver.Server
	smtp  *smtp.Server
	log   *slog.Logger
	wg    sync.WaitGroup
	once  sync.Once
}

// Start seeds the accounts and starts the IMAP and SMTP servers on free
// loopback ports.
func Start(o Options) (*Mail, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	if o.Password == "" {
		o.Password = NewPassword()
	}
	m := &Mail{
		Accounts: []Account{{"demo@example.com", o.Password}, {"alex@example.com", o.Password}},
		mem:      imapmemserver.New(),
		users:    map[string]*imapmemserver.User{},
		pass:     map[string]string{},
		log:      o.Logger,
	}
	seeds := [][]Message{Messages(), AlexMessages()}
	for i, a := range m.Accounts {
		u := imapmemserver.NewUser(a.User, a.Password)
		if err := Seed(u, seeds[i], o.Now); err != nil {
			return nil, err
		}
		m.mem.AddUser(u)
		m.users[strings.ToLower(a.User)] = u
		m.pass[strings.ToLower(a.User)] = a.Password
	}

	imapLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo: IMAP listener: %w", err)
	}
	smtpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		imapLn.Close()
		return nil, fmt.Errorf("demo: SMTP listener: %w", err)
	}
	m.IMAPAddr, m.SMTPAddr = imapLn.Addr().String(), smtpLn.Addr().String()

	m.imap = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return m.mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true, // loopback only
	})
	m.smtp = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) {
		return &session{m: m}, nil
	}))
	m.smtp.Domain = "demo.easgate.example"
	m.smtp.AllowInsecureAuth = true // loopback only
	m.smtp.MaxMessageBytes = MaxMessageBytes
	m.smtp.MaxRecipients = 50
	m.smtp.ReadTimeout = 5 * time.Minute
	m.smtp.WriteTimeout = time.Minute

	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		if err := m.imap.Serve(imapLn); err != nil && !errors.Is(err, net.ErrClosed) {
			m.log.Error("demo IMAP server stopped", "err", err)
		}
	}()
	go func() {
		defer m.wg.Done()
		if err := m.smtp.Serve(smtpLn); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			m.log.Error("demo SMTP server stopped", "err", err)
		}
	}()
	return m, nil
}

// Close stops both servers and waits for them.
func (m *Mail) Close() error {
	var err error
	m.once.Do(func() {
		err = errors.Join(m.imap.Close(), m.smtp.Close())
		m.wg.Wait()
	})
	return err
}

// Seed creates Folders for u and appends msgs, dated relative to now.
func Seed(u *imapmemserver.User, msgs []Message, now time.Time) error {
	for _, f := range Folders {
		if err := u.Create(f, nil); err != nil {
			return fmt.Errorf("demo: create %s: %w", f, err)
		}
		if err := u.Subscribe(f); err != nil {
			return fmt.Errorf("demo: subscribe %s: %w", f, err)
		}
	}
	for i := range msgs {
		raw, err := msgs[i].Render(now)
		if err != nil {
			return err
		}
		opts := &imap.AppendOptions{Flags: msgs[i].Flags, Time: now.Add(-msgs[i].Age)}
		if _, err := u.Append(msgs[i].Folder, bytes.NewReader(raw), opts); err != nil {
			return fmt.Errorf("demo: append to %s: %w", msgs[i].Folder, err)
		}
	}
	return nil
}

// NewPassword returns a random password of 12 lower-case letters and
// digits, easy to type on a phone.
func NewPassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789" // no l, o, 0, 1
	b := make([]byte, 12)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// MaxMessageBytes is the largest message the demo SMTP server accepts.
const MaxMessageBytes = 25 << 20

// session is one SMTP submission session: AUTH PLAIN as a demo account,
// then mail to demo accounts only.
type session struct {
	m     *Mail
	user  string
	from  string
	rcpts []string
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		want, ok := s.m.pass[strings.ToLower(user)]
		if !ok || (identity != "" && identity != user) || want != pass {
			return smtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	if _, ok := s.m.users[strings.ToLower(to)]; !ok {
		return &smtp.SMTPError{
			Code:         550,
			EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message:      "the demo delivers only to its own accounts (demo@example.com, alex@example.com)",
		}
	}
	s.rcpts = append(s.rcpts, strings.ToLower(to))
	return nil
}

func (s *session) Data(r io.Reader) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	received := fmt.Sprintf("Received: from submission by demo.easgate.example with ESMTPA\r\n\tfor <%s>; %s\r\n",
		strings.Join(s.rcpts, ">, <"), time.Now().Format(time.RFC1123Z))
	msg := append([]byte(received), body...)
	for _, rcpt := range s.rcpts {
		if _, err := s.m.users[rcpt].Append("INBOX", bytes.NewReader(msg), &imap.AppendOptions{}); err != nil {
			return fmt.Errorf("deliver to %s: %w", rcpt, err)
		}
	}
	s.m.log.Info("demo: delivered", "from", s.from, "user", s.user, "rcpts", len(s.rcpts), "bytes", len(msg))
	return nil
}

func (s *session) Reset() { s.from, s.rcpts = "", nil }

func (s *session) Logout() error { return nil }
