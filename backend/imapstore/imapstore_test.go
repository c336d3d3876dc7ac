package imapstore_test

import (
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/backendtest"
	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
)

// TestDovecot runs the conformance suite against Dovecot 2.3: CONDSTORE,
// SPECIAL-USE, LIST-STATUS, UIDPLUS, MOVE, ESEARCH.
func TestDovecot(t *testing.T) {
	d := testsrv.StartDovecot(t, nil)
	backendtest.Run(t, harness(d.Addr, d.Users, true))
}

// TestMemIMAP runs the conformance suite against go-imap's memory server:
// no CONDSTORE (the UID/flag diff path) and no SPECIAL-USE (roles from
// names).
func TestMemIMAP(t *testing.T) {
	m := testsrv.StartMemIMAP(t, nil)
	backendtest.Run(t, harness(m.Addr, m.Users, false))
}

func harness(addr string, users map[string]string, condStore bool) backendtest.Harness {
	return backendtest.Harness{
		New: func(t *testing.T) backend.Store {
			return newStore(t, imapstore.Options{Addr: addr})
		},
		Unreachable: func(t *testing.T) backend.Store {
			return newStore(t, imapstore.Options{Addr: closedAddr(t)})
		},
		User:     "alice",
		Password: users["alice"],
		Outside: func(t *testing.T) backendtest.Outside {
			return dialOutside(t, addr, "alice", users["alice"])
		},
		CondStore: condStore,
	}
}

func newStore(t *testing.T, opts imapstore.Options) *imapstore.Store {
	t.Helper()
	s, err := imapstore.New(opts)
	if err != nil {
		t.Fatalf("imapstore.New: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// outside is backendtest.Outside over a raw go-imap client.
type outside struct {
	t testing.TB
	c *imapclient.Client
}

func dialOutside(t testing.TB, addr, user, password string) *outside {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatalf("outside: dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("outside: login: %v", err)
	}
	return &outside{t: t, c: c}
}

func (o *outside) fatal(what string, err error) {
	o.t.Helper()
	if err != nil {
		o.t.Fatalf("outside: %s: %v", what, err)
	}
}

func (o *outside) selectBox(name string) {
	o.t.Helper()
	_, err := o.c.Select(name, nil).Wait()
	o.fatal("SELECT "+name, err)
}

func (o *outside) unselect() {
	if o.c.Mailbox() != nil {
		o.fatal("UNSELECT", o.c.Unselect().Wait())
	}
}

func (o *outside) CreateFolder(name string) {
	o.t.Helper()
	o.fatal("CREATE "+name, o.c.Create(name, nil).Wait())
}

func (o *outside) DeleteFolder(name string) {
	o.t.Helper()
	o.unselect()
	o.fatal("DELETE "+name, o.c.Delete(name).Wait())
}

func (o *outside) Folders() []string {
	o.t.Helper()
	list, err := o.c.List("", "*", nil).Collect()
	o.fatal("LIST", err)
	var names []string
	for _, l := range list {
		if strings.EqualFold(l.Mailbox, "INBOX") {
			names = append(names, "INBOX")
		} else {
			names = append(names, l.Mailbox)
		}
	}
	return names
}

func (o *outside) UIDValidity(name string) uint32 {
	o.t.Helper()
	st, err := o.c.Status(name, &imap.StatusOptions{UIDValidity: true}).Wait()
	o.fatal("STATUS "+name, err)
	return st.UIDValidity
}

func (o *outside) Append(folder string, msg []byte, flags []string, date time.Time) backend.UID {
	o.t.Helper()
	opts := &imap.AppendOptions{Time: date}
	for _, f := range flags {
		opts.Flags = append(opts.Flags, imap.Flag(f))
	}
	cmd := o.c.Append(folder, int64(len(msg)), opts)
	_, err := cmd.Write(msg)
	o.fatal("APPEND write", err)
	o.fatal("APPEND close", cmd.Close())
	data, err := cmd.Wait()
	o.fatal("APPEND", err)
	if data.UID == 0 {
		o.t.Fatalf("outside: APPEND to %s gave no UID", folder)
	}
	return backend.UID(data.UID)
}

func (o *outside) SetFlags(folder string, uid backend.UID, flags []string) {
	o.t.Helper()
	o.selectBox(folder)
	f := []imap.Flag{}
	for _, fl := range flags {
		f = append(f, imap.Flag(fl))
	}
	o.fatal("UID STORE", o.c.Store(imap.UIDSetNum(imap.UID(uid)), &imap.StoreFlags{Op: imap.StoreFlagsSet, Silent: true, Flags: f}, nil).Close())
}

func (o *outside) Expunge(folder string, uid backend.UID) {
	o.t.Helper()
	o.selectBox(folder)
	set := imap.UIDSetNum(imap.UID(uid))
	o.fatal("UID STORE", o.c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close())
	o.fatal("UID EXPUNGE", o.c.UIDExpunge(set).Close())
}

func (o *outside) Messages(folder string) map[backend.UID][]string {
	o.t.Helper()
	o.selectBox(folder)
	msgs, err := o.c.Fetch(imap.UIDSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	o.fatal("UID FETCH 1:* FLAGS", err)
	out := map[backend.UID][]string{}
	for _, m := range msgs {
		var flags []string
		for _, f := range m.Flags {
			flags = append(flags, string(f))
		}
		out[backend.UID(m.UID)] = backend.NormalizeFlags(flags)
	}
	return out
}

func (o *outside) Body(folder string, uid backend.UID) []byte {
	o.t.Helper()
	o.selectBox(folder)
	sec := &imap.FetchItemBodySection{Peek: true}
	msgs, err := o.c.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}}).Collect()
	o.fatal("UID FETCH BODY[]", err)
	if len(msgs) != 1 {
		o.t.Fatalf("outside: no UID %d in %s", uid, folder)
	}
	return msgs[0].FindBodySection(sec)
}

// syncBuffer is a bytes.Buffer safe for the test to read while
// connections write.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
