package testsrv

import (
	"fmt"
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/easgate/easgate/backend/testsrv/testproc"
)

// MemFolders are the mailboxes every MemIMAP user starts with.
var MemFolders = []string{"INBOX", "Drafts", "Sent", "Trash", "Junk"}

// MemIMAP is go-imap's in-memory IMAP server on 127.0.0.1. It speaks
// IMAP4rev2 (IDLE, UIDPLUS, MOVE, ESEARCH, LIST-STATUS) but has no
// CONDSTORE and returns no SPECIAL-USE attributes, which makes it the
// server for exercising the paths a gateway takes without them.
type MemIMAP struct {
	// Addr is "127.0.0.1:port" (plain text; AUTH allowed without TLS).
	Addr string
	// Users are the accounts, name to password.
	Users map[string]string

	mem    *imapmemserver.Server
	users  map[string]*imapmemserver.User
	server *imapserver.Server
	ln     net.Listener
	served chan error
}

// StartMemIMAP starts a MemIMAP for tb with users (DefaultUsers if nil) and
// closes it at tb.Cleanup.
func StartMemIMAP(tb testing.TB, users map[string]string) *MemIMAP {
	tb.Helper()
	if users == nil {
		users = DefaultUsers()
	}
	return testproc.ForTest(tb, "memory IMAP server", func() (*MemIMAP, error) { return LaunchMemIMAP(users) }, (*MemIMAP).Close)
}

// LaunchMemIMAP starts a MemIMAP whose users each have the MemFolders; the
// caller must call Close.
func LaunchMemIMAP(users map[string]string) (*MemIMAP, error) {
	m := &MemIMAP{
		Users:  make(map[string]string, len(users)),
		mem:    imapmemserver.New(),
		users:  make(map[string]*imapmemserver.User, len(users)),
		served: make(chan error, 1),
	}
	for name, pw := range users {
		u := imapmemserver.NewUser(name, pw)
		for _, f := range MemFolders {
			if err := u.Create(f, nil); err != nil {
				return nil, fmt.Errorf("memory IMAP: creating %s for %s: %w", f, name, err)
			}
			if err := u.Subscribe(f); err != nil {
				return nil, fmt.Errorf("memory IMAP: subscribing %s for %s: %w", f, name, err)
			}
		}
		m.mem.AddUser(u)
		m.users[name] = u
		m.Users[name] = pw
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("memory IMAP: %w", err)
	}
	m.Addr = ln.Addr().String()
	m.ln = ln
	m.server = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return m.mem.NewSession(), nil, nil
		},
		Caps: imap.CapSet{
			imap.CapIMAP4rev1: {},
			imap.CapIMAP4rev2: {},
		},
		InsecureAuth: true,
	})
	go func() { m.served <- m.server.Serve(ln) }()
	return m, nil
}

// User returns the server-side user for seeding mail directly (for example
// with Append), or nil if name is unknown.
func (m *MemIMAP) User(name string) *imapmemserver.User { return m.users[name] }

// Dial opens an IMAP connection and logs in as user; it is closed at
// tb.Cleanup.
func (m *MemIMAP) Dial(tb testing.TB, user string) *imapclient.Client {
	tb.Helper()
	return dialLogin(tb, m.Addr, user, m.Users[user], nil)
}

// Close stops the server and closes its connections.
func (m *MemIMAP) Close() error {
	err := m.server.Close()
	// Close the listener too, in case Serve had not registered it yet (it
	// then returns at once without accepting).
	m.ln.Close()
	<-m.served
	return err
}
