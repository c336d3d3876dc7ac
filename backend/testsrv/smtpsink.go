package testsrv

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/easgate/easgate/backend/testsrv/testproc"
)

// waitTimeout bounds SMTPSink.WaitFor so a missing message fails the test
// instead of hanging it. It is not a speed expectation.
const waitTimeout = 60 * time.Second

// Message is one message the SMTP sink accepted.
type Message struct {
	// From is the MAIL FROM reverse path.
	From string
	// To are the RCPT TO forward paths, in order.
	To []string
	// Data is the message exactly as received after DATA, with the
	// transparency dots removed and CRLF line endings kept.
	Data []byte
	// AuthUser is the user that authenticated with AUTH PLAIN, or "".
	AuthUser string
}

// SMTPSink is an in-process SMTP server on 127.0.0.1 that accepts every
// message and keeps it in memory.
type SMTPSink struct {
	// Addr is "127.0.0.1:port" (plain text, no STARTTLS).
	Addr string

	server *smtp.Server
	ln     net.Listener
	users  map[string]string
	served chan error

	mu       sync.Mutex
	messages []Message
	changed  chan struct{} // closed and replaced whenever a message arrives
}

// StartSMTPSink starts an SMTP sink for tb and closes it at tb.Cleanup. If
// users is nil any client may send; otherwise AUTH PLAIN (offered over
// plain text) with one of users is required before MAIL FROM.
func StartSMTPSink(tb testing.TB, users map[string]string) *SMTPSink {
	tb.Helper()
	return testproc.ForTest(tb, "SMTP sink", func() (*SMTPSink, error) { return LaunchSMTPSink(users) }, (*SMTPSink).Close)
}

// LaunchSMTPSink starts an SMTP sink; see StartSMTPSink. The caller must
// call Close.
func LaunchSMTPSink(users map[string]string) (*SMTPSink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("smtp sink: %w", err)
	}
	s := &SMTPSink{
		Addr:    ln.Addr().String(),
		users:   users,
		served:  make(chan error, 1),
		changed: make(chan struct{}),
	}
	srv := smtp.NewServer(smtp.BackendFunc(s.newSession))
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.MaxRecipients = 1000
	srv.MaxMessageBytes = 64 << 20
	srv.ReadTimeout = 5 * time.Minute
	srv.WriteTimeout = 5 * time.Minute
	s.server = srv
	s.ln = ln
	go func() { s.served <- srv.Serve(ln) }()
	return s, nil
}

// Close stops the server and closes open connections.
func (s *SMTPSink) Close() error {
	err := s.server.Close()
	// Close the listener too, in case Serve had not registered it yet;
	// a second close only reports net.ErrClosed.
	s.ln.Close()
	if serveErr := <-s.served; serveErr != nil && err == nil {
		err = serveErr
	}
	return err
}

// Messages returns a copy of the messages received so far, in order.
func (s *SMTPSink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Wait blocks until at least n messages have arrived or ctx is done, and
// returns the messages received so far.
func (s *SMTPSink) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		if len(s.messages) >= n {
			msgs := append([]Message(nil), s.messages...)
			s.mu.Unlock()
			return msgs, nil
		}
		changed := s.changed
		got := len(s.messages)
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, fmt.Errorf("smtp sink: %d of %d messages: %w", got, n, ctx.Err())
		}
	}
}

// WaitFor is Wait for tests: it fails tb if n messages have not arrived
// within a generous deadline.
func (s *SMTPSink) WaitFor(tb testing.TB, n int) []Message {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	msgs, err := s.Wait(ctx, n)
	if err != nil {
		tb.Fatalf("testsrv: %v", err)
	}
	return msgs
}

func (s *SMTPSink) deliver(m Message) {
	s.mu.Lock()
	s.messages = append(s.messages, m)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *SMTPSink) newSession(*smtp.Conn) (smtp.Session, error) {
	sess := &sinkSession{sink: s}
	if s.users == nil {
		return sess, nil
	}
	return &authSinkSession{sess}, nil
}

// errAuthRequired is the RFC 4954 §6 reply to MAIL before AUTH, as real
// submission servers send it (go-smtp's own ErrAuthRequired uses 502).
var errAuthRequired = &smtp.SMTPError{
	Code:         530,
	EnhancedCode: smtp.EnhancedCode{5, 7, 0},
	Message:      "Authentication required",
}

// sinkSession collects one message at a time.
type sinkSession struct {
	sink     *SMTPSink
	authUser string
	from     string
	to       []string
}

func (ss *sinkSession) Mail(from string, _ *smtp.MailOptions) error {
	if ss.sink.users != nil && ss.authUser == "" {
		return errAuthRequired
	}
	ss.from = from
	ss.to = nil
	return nil
}

func (ss *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.to = append(ss.to, to)
	return nil
}

func (ss *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.sink.deliver(Message{From: ss.from, To: ss.to, Data: data, AuthUser: ss.authUser})
	ss.from, ss.to = "", nil
	return nil
}

func (ss *sinkSession) Reset() { ss.from, ss.to = "", nil }

func (ss *sinkSession) Logout() error { return nil }

// authSinkSession adds AUTH PLAIN against the sink's users.
type authSinkSession struct{ *sinkSession }

func (as *authSinkSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (as *authSinkSession) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return smtp.ErrAuthFailed
		}
		want, ok := as.sink.users[username]
		if !ok || want != password {
			return smtp.ErrAuthFailed
		}
		as.authUser = username
		return nil
	}), nil
}
