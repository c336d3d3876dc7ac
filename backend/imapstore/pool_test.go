package imapstore_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
)

// TestPoolBound: many goroutines of one user never hold more connections
// than MaxConnsPerUser, as the pool counts them and as Dovecot does.
func TestPoolBound(t *testing.T) {
	d := testsrv.StartDovecot(t, nil)
	s := newStore(t, imapstore.Options{Addr: d.Addr, MaxConnsPerUser: 3})
	ctx := t.Context()
	sess, err := s.Open(ctx, "alice", d.Users["alice"])
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()

	var wg sync.WaitGroup
	var mu sync.Mutex
	maxSeen := 0
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			folders, err := sess.Folders(ctx)
			if err != nil {
				errs <- err
				return
			}
			if len(folders) != 5 {
				errs <- errors.New("wrong folder count")
			}
			n, err := d.ConnectionCount("alice")
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			maxSeen = max(maxSeen, n)
			mu.Unlock()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := s.Stats("alice")
	if st.MaxOpen > 3 || st.Open > 3 || st.Dials > 3 {
		t.Fatalf("pool stats %+v, want at most 3 connections ever", st)
	}
	if st.MaxOpen < 2 {
		t.Errorf("32 concurrent calls used only %d connection(s)", st.MaxOpen)
	}
	if maxSeen > 3 {
		t.Fatalf("Dovecot counted %d sessions for alice, bound is 3", maxSeen)
	}
	if n, err := d.ConnectionCount("alice"); err != nil || n != st.Open {
		t.Fatalf("Dovecot counts %d sessions (%v), pool has %d open", n, err, st.Open)
	}
}

// TestPoolReplacesKilledConnection: connections killed by the server
// (doveadm kick) are dropped and replaced without the caller noticing.
func TestPoolReplacesKilledConnection(t *testing.T) {
	d := testsrv.StartDovecot(t, nil)
	s := newStore(t, imapstore.Options{Addr: d.Addr})
	ctx := t.Context()
	sess, err := s.Open(ctx, "alice", d.Users["alice"])
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	if _, err := sess.Folders(ctx); err != nil {
		t.Fatal(err)
	}
	before := s.Stats("alice")
	if before.Open != 1 {
		t.Fatalf("stats %+v, want one connection", before)
	}
	doveadm, err := exec.LookPath("doveadm")
	if err != nil {
		t.Fatalf("doveadm not found: install the Debian package dovecot-core (%v)", err)
	}
	out, err := exec.Command(doveadm, "-c", filepath.Join(d.Dir, "dovecot.conf"), "kick", "alice").CombinedOutput()
	if err != nil {
		t.Fatalf("doveadm kick: %v: %s", err, out)
	}
	for range 3 {
		f, err := sess.Folders(ctx)
		if err != nil {
			t.Fatalf("Folders after the kick: %v", err)
		}
		if len(f) != 5 {
			t.Fatalf("Folders after the kick: %v", f)
		}
	}
	after := s.Stats("alice")
	if after.Dials != before.Dials+1 || after.Open != 1 {
		t.Fatalf("stats before %+v, after %+v: want exactly one new connection", before, after)
	}
	if n, err := d.ConnectionCount("alice"); err != nil || n != 1 {
		t.Fatalf("Dovecot counts %d sessions (%v), want 1", n, err)
	}
}

// TestPoolIdleTimeout: idle connections are closed and the user's pool is
// forgotten.
func TestPoolIdleTimeout(t *testing.T) {
	d := testsrv.StartDovecot(t, nil)
	s := newStore(t, imapstore.Options{Addr: d.Addr, IdleTimeout: 50 * time.Millisecond})
	if err := s.Authenticate(t.Context(), "alice", d.Users["alice"]); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats("alice"); st.Open != 1 {
		t.Fatalf("stats after login %+v", st)
	}
	// Wait for the reaper (a bound, not a speed requirement).
	deadline := time.Now().Add(30 * time.Second)
	for s.Stats("alice") != (imapstore.PoolStats{}) {
		if time.Now().After(deadline) {
			t.Fatalf("idle connection still open: %+v", s.Stats("alice"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for {
		n, err := d.ConnectionCount("alice")
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Dovecot still counts %d sessions", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestChangesSkipSendsNoFetch: with CONDSTORE an unchanged folder costs one
// STATUS: no SELECT, SEARCH or FETCH goes on the wire.
func TestChangesSkipSendsNoFetch(t *testing.T) {
	d := testsrv.StartDovecot(t, nil)
	var wire syncBuffer
	s := newStore(t, imapstore.Options{Addr: d.Addr, DebugWriter: &wire})
	ctx := t.Context()
	out := dialOutside(t, d.Addr, "alice", d.Users["alice"])
	out.Append("INBOX", []byte("Subject: x\r\n\r\nx\r\n"), nil, time.Now())
	sess, err := s.Open(ctx, "alice", d.Users["alice"])
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	folders, err := sess.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inbox := folders[0]
	cs, err := sess.Changes(ctx, inbox.ID, nil, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	mark := len(wire.String())
	cs, err = sess.Changes(ctx, inbox.ID, cs.State, time.Time{})
	if err != nil || !cs.Empty() || cs.Scan != backend.ScanSkipped {
		t.Fatalf("Changes = %+v, %v; want nothing, skipped", cs, err)
	}
	sent := clientLines(wire.String()[mark:])
	for _, line := range sent {
		for _, cmd := range []string{" SELECT ", " UID SEARCH ", " UID FETCH ", " FETCH "} {
			if strings.Contains(line, cmd) {
				t.Errorf("an unchanged folder sent %q", line)
			}
		}
	}
	if !strings.Contains(strings.Join(sent, "\n"), " STATUS INBOX (") {
		t.Errorf("no STATUS on the wire: %q", sent)
	}
}

// clientLines picks the tagged commands out of a debug transcript (the
// client's tags are "T<n>").
func clientLines(wire string) []string {
	var out []string
	for _, line := range strings.Split(wire, "\r\n") {
		if strings.HasPrefix(line, "T") && strings.Contains(line, " ") && !strings.Contains(line, " OK ") && !strings.Contains(line, " NO ") && !strings.Contains(line, " BAD ") {
			out = append(out, line)
		}
	}
	return out
}

// TestDebugWriterConcurrent: a plain bytes.Buffer as DebugWriter is safe
// with many connections (the race detector checks).
func TestDebugWriterConcurrent(t *testing.T) {
	m := testsrv.StartMemIMAP(t, nil)
	var buf bytes.Buffer
	s, err := imapstore.New(imapstore.Options{Addr: m.Addr, DebugWriter: &buf, MaxConnsPerUser: 4})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := s.Open(t.Context(), "alice", m.Users["alice"])
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if _, err := sess.Folders(t.Context()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	sess.Close()
	s.Close()
}

// TestCancelledContext: a cancelled request fails with ErrUnavailable and
// leaves the pool usable.
func TestCancelledContext(t *testing.T) {
	m := testsrv.StartMemIMAP(t, nil)
	s := newStore(t, imapstore.Options{Addr: m.Addr, MaxConnsPerUser: 1})
	sess, err := s.Open(t.Context(), "alice", m.Users["alice"])
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := sess.Folders(ctx); !errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Folders with a cancelled context: %v, want ErrUnavailable", err)
	}
	if _, err := sess.Folders(t.Context()); err != nil {
		t.Fatalf("Folders afterwards: %v", err)
	}
	if st := s.Stats("alice"); st.Open != 1 || st.Idle != 1 {
		t.Fatalf("stats %+v, want one idle connection", st)
	}
}

// TestSecurity: implicit TLS and STARTTLS against a memory server with a
// certificate made here; an untrusted certificate is ErrUnavailable.
func TestSecurity(t *testing.T) {
	c := testsrv.SelfSigned(t)
	cert, roots := c.TLS, c.Roots
	srvTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	tlsAddr := serveMem(t, srvTLS, true)
	startTLSAddr := serveMem(t, srvTLS, false)
	trusted := &tls.Config{RootCAs: roots}
	tests := []struct {
		name     string
		opts     imapstore.Options
		wantFail bool
	}{
		{"tls", imapstore.Options{Addr: tlsAddr, Security: imapstore.SecurityTLS, TLSConfig: trusted}, false},
		{"starttls", imapstore.Options{Addr: startTLSAddr, Security: imapstore.SecurityStartTLS, TLSConfig: trusted}, false},
		{"tls untrusted", imapstore.Options{Addr: tlsAddr, Security: imapstore.SecurityTLS}, true},
		{"starttls untrusted", imapstore.Options{Addr: startTLSAddr, Security: imapstore.SecurityStartTLS}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t, tt.opts)
			err := s.Authenticate(t.Context(), "alice", "alicepw")
			if tt.wantFail {
				if !errors.Is(err, backend.ErrUnavailable) {
					t.Fatalf("Authenticate: %v, want ErrUnavailable", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			if err := s.Authenticate(t.Context(), "alice", "wrong"); !errors.Is(err, backend.ErrAuthFailed) {
				t.Fatalf("Authenticate with a wrong password: %v", err)
			}
		})
	}
	for _, text := range []string{"none", "starttls", "tls"} {
		sec, err := imapstore.ParseSecurity(text)
		if err != nil || sec.String() != text {
			t.Errorf("ParseSecurity(%q) = %v, %v", text, sec, err)
		}
	}
	if _, err := imapstore.ParseSecurity("ssl"); err == nil {
		t.Errorf("ParseSecurity(ssl) succeeded")
	}
}

// serveMem serves a memory IMAP server with user alice over implicit TLS
// (implicit) or plain text with STARTTLS.
func serveMem(t *testing.T, cfg *tls.Config, implicit bool) string {
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("alice", "alicepw")
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	opts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: implicit,                   // over implicit TLS the server cannot tell
		Logger:       log.New(io.Discard, "", 0), // refused handshakes are expected
	}
	if !implicit {
		opts.TLSConfig = cfg
	}
	srv := imapserver.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicit {
		ln = tls.NewListener(ln, cfg)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { srv.Close(); ln.Close(); <-done })
	return ln.Addr().String()
}

// TestWriteAfterSelectedFolderDeleted: Dovecot drops a connection whose
// selected mailbox another client deleted. The next operation on that
// pooled connection, even a change, must still succeed: nothing was sent
// that changed the mailbox before the connection proved dead.
func TestWriteAfterSelectedFolderDeleted(t *testing.T) {
	d := testsrv.StartDovecot(t, nil)
	s := newStore(t, imapstore.Options{Addr: d.Addr, MaxConnsPerUser: 1})
	ctx := t.Context()
	out := dialOutside(t, d.Addr, "alice", d.Users["alice"])
	out.CreateFolder("Doomed")
	doomed := out.Append("Doomed", []byte("Subject: a\r\n\r\na\r\n"), nil, time.Now())
	keep := out.Append("INBOX", []byte("Subject: b\r\n\r\nb\r\n"), nil, time.Now())
	sess, err := s.Open(ctx, "alice", d.Users["alice"])
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	folders, err := sess.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var inbox, gone backend.Folder
	for _, f := range folders {
		switch f.Name {
		case "INBOX":
			inbox = f
		case "Doomed":
			gone = f
		}
	}
	if _, err := sess.Summaries(ctx, gone.ID, backend.NewUIDSet(doomed)); err != nil {
		t.Fatal(err)
	}
	out.DeleteFolder("Doomed")
	flags, err := sess.StoreFlags(ctx, inbox.ID, keep, []string{backend.FlagFlagged}, nil)
	if err != nil {
		t.Fatalf("StoreFlags after the selected folder vanished: %v", err)
	}
	if !backend.HasFlag(flags, backend.FlagFlagged) || !backend.HasFlag(out.Messages("INBOX")[keep], backend.FlagFlagged) {
		t.Fatalf("flags %q; server has %q", flags, out.Messages("INBOX")[keep])
	}
}

// cutProxy forwards TCP to a server. Cut makes every connection open so
// far go silently dead: the client notices only when it next sends a
// command, as with a NAT or firewall that dropped an idle connection.
type cutProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	conns    []*proxied
}

type proxied struct {
	client, server net.Conn
	cut            chan struct{}
}

func startCutProxy(t *testing.T, upstream string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, upstream: upstream}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.client.Close()
			c.server.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			cc, err := ln.Accept()
			if err != nil {
				return
			}
			sc, err := net.Dial("tcp", upstream)
			if err != nil {
				cc.Close()
				continue
			}
			pc := &proxied{client: cc, server: sc, cut: make(chan struct{})}
			p.mu.Lock()
			p.conns = append(p.conns, pc)
			p.mu.Unlock()
			wg.Go(func() { // server → client until cut
				buf := make([]byte, 32<<10)
				for {
					n, err := sc.Read(buf)
					if err != nil {
						return
					}
					select {
					case <-pc.cut:
						return
					default:
					}
					if _, err := cc.Write(buf[:n]); err != nil {
						return
					}
				}
			})
			wg.Go(func() { // client → server; after the cut, hang up on the next command
				buf := make([]byte, 32<<10)
				for {
					n, err := cc.Read(buf)
					if err != nil {
						sc.Close()
						return
					}
					select {
					case <-pc.cut:
						cc.Close()
						return
					default:
					}
					if _, err := sc.Write(buf[:n]); err != nil {
						return
					}
				}
			})
		}
	})
	return p
}

// Cut kills every connection made so far, telling neither side.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		close(c.cut)
		c.server.Close()
	}
	p.conns = nil
}

// TestRetryOnSilentlyDeadConnection: a pooled connection that died without
// the client noticing is replaced, and the operation (a read, and a change
// that had sent nothing yet) succeeds on a new connection.
func TestRetryOnSilentlyDeadConnection(t *testing.T) {
	m := testsrv.StartMemIMAP(t, nil)
	proxy := startCutProxy(t, m.Addr)
	s := newStore(t, imapstore.Options{Addr: proxy.ln.Addr().String(), MaxConnsPerUser: 1})
	ctx := t.Context()
	out := dialOutside(t, m.Addr, "alice", m.Users["alice"])
	u := out.Append("INBOX", []byte("Subject: b\r\n\r\nb\r\n"), nil, time.Now())
	sess, err := s.Open(ctx, "alice", m.Users["alice"])
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	folders, err := sess.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inbox := folders[0]

	proxy.Cut()
	if _, err := sess.Folders(ctx); err != nil {
		t.Fatalf("Folders on a silently dead connection: %v", err)
	}
	if st := s.Stats("alice"); st.Dials != 2 || st.Open != 1 {
		t.Fatalf("stats %+v, want a second dial and one open connection", st)
	}
	proxy.Cut()
	flags, err := sess.StoreFlags(ctx, inbox.ID, u, []string{backend.FlagSeen}, nil)
	if err != nil {
		t.Fatalf("StoreFlags on a silently dead connection: %v", err)
	}
	if !backend.HasFlag(flags, backend.FlagSeen) || !backend.HasFlag(out.Messages("INBOX")[u], backend.FlagSeen) {
		t.Fatalf("flags %q, server has %q", flags, out.Messages("INBOX")[u])
	}
	if st := s.Stats("alice"); st.Dials != 3 {
		t.Fatalf("stats %+v, want a third dial", st)
	}
}

// TestIMAP4rev1Only: against a server with none of the extensions (no
// LIST-STATUS, ESEARCH, CONDSTORE, UIDPLUS, MOVE), folders come from
// LIST plus STATUS per folder, changes from plain UID SEARCH, and what
// cannot be done safely fails as a server error, never as success.
func TestIMAP4rev1Only(t *testing.T) {
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("alice", "alicepw")
	for _, name := range []string{"INBOX", "Trash", "Work"} {
		if err := u.Create(name, nil); err != nil {
			t.Fatal(err)
		}
	}
	mem.AddUser(u)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() { srv.Close(); ln.Close(); <-done })

	ctx := t.Context()
	out := dialOutside(t, ln.Addr().String(), "alice", "alicepw")
	u1 := out.Append("Work", []byte("Subject: a\r\n\r\na\r\n"), nil, time.Now())
	u2 := out.Append("Work", []byte("Subject: b\r\n\r\nb\r\n"), nil, time.Now())
	s := newStore(t, imapstore.Options{Addr: ln.Addr().String()})
	sess, err := s.Open(ctx, "alice", "alicepw")
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	folders, err := sess.Folders(ctx)
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	var work, trash backend.Folder
	for _, f := range folders {
		switch f.Name {
		case "Work":
			work = f
		case "Trash":
			trash = f
		}
	}
	if work.Messages != 2 || work.UIDValidity == 0 || work.UIDNext <= u2 || trash.Role != backend.RoleTrash {
		t.Fatalf("folders from LIST + STATUS: %+v", folders)
	}
	cs, err := sess.Changes(ctx, work.ID, nil, time.Time{})
	if err != nil || cs.Added.String() != backend.NewUIDSet(u1, u2).String() || cs.Scan != backend.ScanFull {
		t.Fatalf("Changes: %+v, %v", cs, err)
	}
	out.Expunge("Work", u1)
	cs, err = sess.Changes(ctx, work.ID, cs.State, time.Time{})
	if err != nil || cs.Expunged.String() != backend.NewUIDSet(u1).String() {
		t.Fatalf("Changes after an expunge: %+v, %v", cs, err)
	}
	// One message cannot be expunged alone without UID EXPUNGE: refuse.
	if _, err := sess.Delete(ctx, work.ID, u2, false); err == nil || errors.Is(err, backend.ErrUnavailable) {
		t.Fatalf("Delete without UIDPLUS: %v, want a server error", err)
	}
	if _, ok := out.Messages("Work")[u2]; !ok {
		t.Fatalf("the refused Delete removed UID %d", u2)
	}
	if _, err := sess.Folders(ctx); err != nil {
		t.Fatalf("the connection did not survive the refusal: %v", err)
	}
}
