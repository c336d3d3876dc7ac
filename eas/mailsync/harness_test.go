package mailsync_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
	"github.com/easgate/easgate/devices/boltstore"
	"github.com/easgate/easgate/eas/mailitem"
	"github.com/easgate/easgate/eas/mailsync"
	"github.com/easgate/easgate/wbxml"
)

// env is one test's mail server, mail session, device store and an
// outside IMAP client playing webmail.
type env struct {
	t       testing.TB
	ctx     context.Context
	sess    backend.Session
	eng     *mailsync.Engine
	out     *imapclient.Client
	servers string
}

type server struct {
	name string
	addr func(t *testing.T) (string, map[string]string)
}

var servers = []server{
	{"dovecot", func(t *testing.T) (string, map[string]string) {
		d := testsrv.StartDovecot(t, nil)
		return d.Addr, d.Users
	}},
	{"memimap", func(t *testing.T) (string, map[string]string) {
		m := testsrv.StartMemIMAP(t, nil)
		return m.Addr, m.Users
	}},
}

// forEachServer runs f against Dovecot (CONDSTORE) and go-imap's memory
// server (no CONDSTORE).
func forEachServer(t *testing.T, f func(t *testing.T, e *env)) {
	for _, s := range servers {
		t.Run(s.name, func(t *testing.T) {
			addr, users := s.addr(t)
			f(t, newEnv(t, addr, users))
		})
	}
}

func newEnv(t testing.TB, addr string, users map[string]string) *env {
	ctx := context.Background()
	st, err := imapstore.New(imapstore.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sess, err := st.Open(ctx, "alice", users["alice"])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sess.Close() })
	ds, err := boltstore.Open(filepath.Join(t.TempDir(), "devices.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ds.Close() })
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice", users["alice"]).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Trash", "Work"} {
		if err := c.Create(name, nil).Wait(); err != nil && !strings.Contains(err.Error(), "exists") {
			t.Fatalf("CREATE %s: %v", name, err)
		}
	}
	return &env{t: t, ctx: ctx, sess: sess, eng: &mailsync.Engine{Store: ds}, out: c}
}

// folder returns the backend FolderID of the named folder.
func (e *env) folder(name string) backend.FolderID {
	e.t.Helper()
	fs, err := e.sess.Folders(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, f := range fs {
		if f.Name == name {
			return f.ID
		}
	}
	e.t.Fatalf("no folder %q", name)
	return ""
}

func message(i int, date time.Time) string {
	return fmt.Sprintf("From: Sender %d <s%d@example.com>\r\nTo: alice@example.com\r\nSubject: message %d\r\nDate: %s\r\nMessage-ID: <m%d@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nBody of message %d.\r\n",
		i, i, i, date.Format(time.RFC1123Z), i, i)
}

// appendMsg appends message i to mailbox from outside, dated date.
func (e *env) appendMsg(mailbox string, i int, date time.Time) {
	e.t.Helper()
	raw := message(i, date)
	cmd := e.out.Append(mailbox, int64(len(raw)), &imap.AppendOptions{Time: date})
	if _, err := cmd.Write([]byte(raw)); err != nil {
		e.t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		e.t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		e.t.Fatalf("APPEND: %v", err)
	}
}

// appendMsgs appends messages number from through to (see message) to
// mailbox from outside, dated date.
func (e *env) appendMsgs(mailbox string, from, to int, date time.Time) {
	e.t.Helper()
	for i := from; i <= to; i++ {
		e.appendMsg(mailbox, i, date)
	}
}

func (e *env) selectBox(mailbox string) {
	e.t.Helper()
	if _, err := e.out.Select(mailbox, nil).Wait(); err != nil {
		e.t.Fatalf("SELECT %s: %v", mailbox, err)
	}
}

// imapView returns what IMAP holds in mailbox: UID → "read,flagged".
func (e *env) imapView(mailbox string) map[backend.UID]string {
	e.t.Helper()
	sel, err := e.out.Select(mailbox, nil).Wait()
	if err != nil {
		e.t.Fatalf("SELECT %s: %v", mailbox, err)
	}
	view := make(map[backend.UID]string)
	if sel.NumMessages == 0 {
		return view
	}
	msgs, err := e.out.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		e.t.Fatalf("FETCH: %v", err)
	}
	for _, m := range msgs {
		view[backend.UID(m.UID)] = flagView(slices.Contains(m.Flags, imap.FlagSeen), slices.Contains(m.Flags, imap.FlagFlagged))
	}
	return view
}

func flagView(read, flagged bool) string { return fmt.Sprintf("read=%v,flagged=%v", read, flagged) }

func (e *env) store(mailbox string, uid backend.UID, op imap.StoreFlagsOp, flags ...imap.Flag) {
	e.t.Helper()
	e.selectBox(mailbox)
	if err := e.out.Store(imap.UIDSetNum(imap.UID(uid)), &imap.StoreFlags{Op: op, Silent: true, Flags: flags}, nil).Close(); err != nil {
		e.t.Fatalf("STORE: %v", err)
	}
}

func (e *env) expunge(mailbox string, uid backend.UID) {
	e.t.Helper()
	e.store(mailbox, uid, imap.StoreFlagsAdd, imap.FlagDeleted)
	if err := e.out.UIDExpunge(imap.UIDSetNum(imap.UID(uid))).Close(); err != nil {
		e.t.Fatalf("UID EXPUNGE: %v", err)
	}
}

func (e *env) moveOut(mailbox string, uid backend.UID, dst string) {
	e.t.Helper()
	e.selectBox(mailbox)
	if _, err := e.out.Move(imap.UIDSetNum(imap.UID(uid)), dst).Wait(); err != nil {
		e.t.Fatalf("MOVE: %v", err)
	}
}

// phone is a model of the phone's copy of one collection.
type phone struct {
	t     testing.TB
	coll  string
	key   string
	items map[string]string // ServerId → flag view
}

func newPhone(t testing.TB, coll string) *phone {
	return &phone{t: t, coll: coll, key: "0", items: make(map[string]string)}
}

func itemView(ad *wbxml.Element) string {
	flag := ad.Child(wbxml.EmailFlag)
	return flagView(ad.ChildText(wbxml.EmailRead) == "1", flag != nil && flag.ChildText(wbxml.EmailStatus) == "2")
}

// apply applies a response to the model, failing on doubles and on
// changes to items the phone does not have.
func (p *phone) apply(r *mailsync.Result) {
	p.t.Helper()
	if r.Status != mailsync.StatusSuccess {
		p.t.Fatalf("status %d", r.Status)
	}
	for _, id := range r.Deletes {
		if _, ok := p.items[id]; !ok {
			p.t.Errorf("Delete of %s, which the phone does not have", id)
		}
		delete(p.items, id)
	}
	for _, id := range r.SoftDeletes {
		delete(p.items, id)
	}
	for _, it := range r.Changes {
		if _, ok := p.items[it.ServerID]; !ok {
			p.t.Errorf("Change of %s, which the phone does not have", it.ServerID)
		}
		p.items[it.ServerID] = itemView(it.Data)
	}
	for _, it := range r.Adds {
		if _, ok := p.items[it.ServerID]; ok {
			p.t.Errorf("Add of %s, which the phone has already", it.ServerID)
		}
		p.items[it.ServerID] = itemView(it.Data)
	}
	p.key = r.SyncKey
}

// matches checks the phone's copy against IMAP.
func (p *phone) matches(view map[backend.UID]string) {
	p.t.Helper()
	want := make(map[string]string)
	for uid, v := range view {
		want[mailsync.ServerID(p.coll, uid)] = v
	}
	for id, v := range want {
		if got, ok := p.items[id]; !ok {
			p.t.Errorf("phone lacks %s (%s)", id, v)
		} else if got != v {
			p.t.Errorf("phone has %s as %s, IMAP as %s", id, got, v)
		}
	}
	for id := range p.items {
		if _, ok := want[id]; !ok {
			p.t.Errorf("phone has %s, which IMAP does not", id)
		}
	}
}

func (e *env) request(coll string, folder backend.FolderID, key string, window int, cmds ...mailsync.Command) *mailsync.Request {
	return &mailsync.Request{
		User: "alice", Device: "dev1", Collection: coll, Folder: folder, Session: e.sess, OpenSession: openShared(e.sess), SyncKey: key,
		Options: mailsync.Options{WindowSize: window, GetChanges: key != "0", DeletesAsMoves: true,
			Item: mailitem.Options{Version: "14.1", BodyPreferences: []mailitem.BodyPreference{{Type: mailitem.BodyPlain, TruncationSize: 500}}}},
		Commands: cmds,
	}
}

// openShared returns a Request.OpenSession that hands out s itself,
// which the read ahead's Close leaves open.
func openShared(s backend.Session) func(context.Context) (backend.Session, error) {
	return func(context.Context) (backend.Session, error) { return unclosable{s}, nil }
}

type unclosable struct{ backend.Session }

func (unclosable) Close() error { return nil }

func (e *env) sync(req *mailsync.Request) *mailsync.Result {
	e.t.Helper()
	r, err := e.eng.Sync(e.ctx, req)
	if err != nil {
		e.t.Fatalf("Sync: %v", err)
	}
	return r
}

// syncAll syncs until nothing more is available.
func (e *env) syncAll(p *phone, folder backend.FolderID, window int) {
	e.t.Helper()
	for range 100 {
		r := e.sync(e.request(p.coll, folder, p.key, window))
		p.apply(r)
		if !r.MoreAvailable {
			return
		}
	}
	e.t.Fatal("MoreAvailable for 100 rounds")
}
