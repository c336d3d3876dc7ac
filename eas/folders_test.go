package eas

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
	"github.com/easgate/easgate/devices/boltstore"
	"github.com/easgate/easgate/wbxml"
	"github.com/easgate/easgate/wbxml/wbxmltest"
)

// folderEnv is a Server on a real IMAP server (through imapstore) and a
// bbolt device store, with a raw IMAP client to check what the server
// really holds.
type folderEnv struct {
	t        *testing.T
	srv      *Server
	log      *bytes.Buffer
	user, pw string
	imap     *imapclient.Client
	version  string
	device   string
}

func newFolderEnv(t *testing.T, addr string, dial func(testing.TB, string) *imapclient.Client, overrides map[string]backend.Role) *folderEnv {
	t.Helper()
	store, err := imapstore.New(imapstore.Options{Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	devs, err := boltstore.Open(filepath.Join(t.TempDir(), "devices.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { devs.Close() })
	log := &bytes.Buffer{}
	cfg := Config{Authenticator: store, Mail: store, Devices: devs, RoleOverrides: overrides,
		Logger: slog.New(slog.NewTextHandler(lockedWriter{&sync.Mutex{}, log}, nil))}
	withPolicy(t, noProvisioning)(&cfg)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, "alice")
	t.Cleanup(func() { c.Close() })
	return &folderEnv{t: t, srv: srv, log: log, user: "alice", pw: "alicepw", imap: c, version: "16.1", device: "androidc1"}
}

// do posts a hierarchy command and returns the decoded answer, checking it
// against Microsoft's schema for the command's response.
func (e *folderEnv) do(cmd string, children ...*wbxml.Element) *wbxml.Element {
	e.t.Helper()
	root := map[string]wbxml.Tag{"FolderSync": wbxml.FolderHierarchyFolderSync, "FolderCreate": wbxml.FolderHierarchyFolderCreate,
		"FolderUpdate": wbxml.FolderHierarchyFolderUpdate, "FolderDelete": wbxml.FolderHierarchyFolderDelete}[cmd]
	body := mustMarshal(e.t, wbxml.E(root, children...))
	r := httptest.NewRequest(http.MethodPost, Path+"?Cmd="+cmd+"&User="+e.user+"&DeviceId="+e.device+"&DeviceType=Android", bytes.NewReader(body))
	r.Header.Set("Authorization", basic(e.user, e.pw))
	r.Header.Set("MS-ASProtocolVersion", e.version)
	r.Header.Set("Content-Type", ContentTypeWBXML)
	w := httptest.NewRecorder()
	e.srv.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		e.t.Fatalf("%s: HTTP %d", cmd, w.Code)
	}
	wbxmltest.ValidateResponse(e.t, cmd+"Response", w.Body.Bytes())
	doc := decode(e.t, w)
	if doc.Tag != root {
		e.t.Fatalf("%s answered with root %v", cmd, doc.Tag)
	}
	return doc
}

func hkey(k string) *wbxml.Element { return wbxml.T(wbxml.FolderHierarchySyncKey, k) }

func status(doc *wbxml.Element) string { return doc.ChildText(wbxml.FolderHierarchyStatus) }

// sync runs FolderSync and returns the new key and the changes as lines
// "A sid parent name type", "U …", "D sid".
func (e *folderEnv) sync(k string) (string, []string) {
	e.t.Helper()
	doc := e.do("FolderSync", hkey(k))
	if st := status(doc); st != "1" {
		e.t.Fatalf("FolderSync %s: Status %s", k, st)
	}
	changes := doc.Child(wbxml.FolderHierarchyChanges)
	var out []string
	for _, c := range changes.Children {
		switch c.Tag {
		case wbxml.FolderHierarchyAdd, wbxml.FolderHierarchyUpdate:
			op := "A"
			if c.Tag == wbxml.FolderHierarchyUpdate {
				op = "U"
			}
			out = append(out, strings.Join([]string{op, c.ChildText(wbxml.FolderHierarchyServerId), c.ChildText(wbxml.FolderHierarchyParentId),
				c.ChildText(wbxml.FolderHierarchyDisplayName), c.ChildText(wbxml.FolderHierarchyType)}, " "))
		case wbxml.FolderHierarchyDelete:
			out = append(out, "D "+c.ChildText(wbxml.FolderHierarchyServerId))
		}
	}
	if n, _ := strconv.Atoi(changes.ChildText(wbxml.FolderHierarchyCount)); n != len(out) {
		e.t.Errorf("Count %d, %d changes", n, len(out))
	}
	return doc.ChildText(wbxml.FolderHierarchySyncKey), out
}

// mailboxes lists what the IMAP server holds.
func (e *folderEnv) mailboxes() []string {
	e.t.Helper()
	list, err := e.imap.List("", "*", nil).Collect()
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, l := range list {
		out = append(out, l.Mailbox)
	}
	slices.Sort(out)
	return out
}

// sidOf returns the ServerId of the Add or Update line naming name.
func sidOf(t *testing.T, changes []string, name string) string {
	t.Helper()
	for _, c := range changes {
		f := strings.Fields(c)
		if len(f) >= 5 && strings.Join(f[3:len(f)-1], " ") == name {
			return f[1]
		}
	}
	t.Fatalf("no folder %q in %q", name, changes)
	return ""
}

func hasLine(changes []string, prefix string) bool {
	return slices.ContainsFunc(changes, func(c string) bool { return strings.HasPrefix(c, prefix) })
}

func TestFolderCommandsDovecot(t *testing.T) {
	d := testsrv.StartDovecot(t, nil)
	runFolderCommands(t, newFolderEnv(t, d.Addr, d.Dial, nil), "Trash", true)
}

// The memory server has no SPECIAL-USE: the role of the German trash comes
// from the override, which also wins over the well-known "Trash". Its
// RENAME leaves the children where they were (go-imap's imapmemserver),
// which the next FolderSync then reports as a move to the top.
func TestFolderCommandsMemIMAP(t *testing.T) {
	m := testsrv.StartMemIMAP(t, nil)
	e := newFolderEnv(t, m.Addr, m.Dial, map[string]backend.Role{"Papierkorb": backend.RoleTrash})
	if err := e.imap.Create("Papierkorb", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	runFolderCommands(t, e, "Papierkorb", false)
}

// runFolderCommands runs the hierarchy commands against e's IMAP server;
// trash is the folder that must be Type 4, renamesChildren whether the
// server's RENAME takes the children along (RFC 9051 6.3.6).
func runFolderCommands(t *testing.T, e *folderEnv, trash string, renamesChildren bool) {
	k, adds := e.sync("0")
	for _, want := range []string{"0 INBOX 2", "0 Drafts 3", "0 Sent 5", "0 " + trash + " 4", "0 Junk 12"} {
		if !slices.ContainsFunc(adds, func(c string) bool { return strings.HasPrefix(c, "A ") && strings.HasSuffix(c, " "+want) }) {
			t.Errorf("initial FolderSync lacks %q: %q", want, adds)
		}
	}
	inbox := sidOf(t, adds, "INBOX")

	// A FolderSync answer that got lost: the same key again gets the same
	// answer, byte for byte, and the same new key.
	if err := e.imap.Create("Ext", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	first := mustMarshal(t, e.do("FolderSync", hkey(k)))
	second := e.do("FolderSync", hkey(k))
	if !bytes.Equal(first, mustMarshal(t, second)) {
		t.Errorf("repeated FolderSync %s answered differently", k)
	}
	if changes := second.Child(wbxml.FolderHierarchyChanges); changes.ChildText(wbxml.FolderHierarchyCount) != "1" {
		t.Errorf("FolderSync after an IMAP CREATE: %d changes, want 1", len(changes.Children)-1)
	}
	k = second.ChildText(wbxml.FolderHierarchySyncKey)

	// FolderCreate, twice nested, and a repeat of the second.
	doc := e.do("FolderCreate", hkey(k), wbxml.T(wbxml.FolderHierarchyParentId, "0"),
		wbxml.T(wbxml.FolderHierarchyDisplayName, "Projects"), wbxml.T(wbxml.FolderHierarchyType, "12"))
	if status(doc) != "1" {
		t.Fatalf("FolderCreate: Status %s", status(doc))
	}
	projects, k := doc.ChildText(wbxml.FolderHierarchyServerId), doc.ChildText(wbxml.FolderHierarchySyncKey)
	create2026 := []*wbxml.Element{hkey(k), wbxml.T(wbxml.FolderHierarchyParentId, projects),
		wbxml.T(wbxml.FolderHierarchyDisplayName, "2026"), wbxml.T(wbxml.FolderHierarchyType, "12")}
	doc = e.do("FolderCreate", create2026...)
	y2026, k2 := doc.ChildText(wbxml.FolderHierarchyServerId), doc.ChildText(wbxml.FolderHierarchySyncKey)
	again := e.do("FolderCreate", create2026...)
	if status(again) != "1" || again.ChildText(wbxml.FolderHierarchyServerId) != y2026 || again.ChildText(wbxml.FolderHierarchySyncKey) != k2 {
		t.Errorf("repeated FolderCreate: Status %s ServerId %s key %s; want 1 %s %s", status(again),
			again.ChildText(wbxml.FolderHierarchyServerId), again.ChildText(wbxml.FolderHierarchySyncKey), y2026, k2)
	}
	k = k2
	if got := e.mailboxes(); !slices.Contains(got, "Projects") || !slices.Contains(got, "Projects/2026") {
		t.Errorf("IMAP after FolderCreate: %q", got)
	}
	if k2, ch := e.sync(k); len(ch) != 0 || k2 != k {
		t.Errorf("FolderSync echoes FolderCreate: key %s→%s %q", k, k2, ch)
	}
	doc = e.do("FolderCreate", hkey(k), wbxml.T(wbxml.FolderHierarchyParentId, "0"),
		wbxml.T(wbxml.FolderHierarchyDisplayName, "Projects"), wbxml.T(wbxml.FolderHierarchyType, "12"))
	if status(doc) != "2" {
		t.Errorf("FolderCreate of an existing folder: Status %s, want 2", status(doc))
	}

	// FolderUpdate: rename and move to the top; the child follows.
	doc = e.do("FolderUpdate", hkey(k), wbxml.T(wbxml.FolderHierarchyServerId, projects),
		wbxml.T(wbxml.FolderHierarchyParentId, "0"), wbxml.T(wbxml.FolderHierarchyDisplayName, "Archive"))
	if status(doc) != "1" {
		t.Fatalf("FolderUpdate: Status %s", status(doc))
	}
	k = doc.ChildText(wbxml.FolderHierarchySyncKey)
	child, wantEcho := "Archive/2026", []string(nil)
	if !renamesChildren {
		child, wantEcho = "Projects/2026", []string{"U " + y2026 + " 0 2026 12"}
	}
	got := e.mailboxes()
	if !slices.Contains(got, "Archive") || !slices.Contains(got, child) || slices.Contains(got, "Projects") {
		t.Errorf("IMAP after FolderUpdate: %q", got)
	}
	k2, ch := e.sync(k)
	if !slices.Equal(ch, wantEcho) {
		t.Errorf("FolderSync after FolderUpdate: %q, want %q", ch, wantEcho)
	}
	k = k2

	// A rename behind the gateway's back (webmail): an Update of the same
	// ServerId, not a Delete and an Add.
	if err := e.imap.Rename(child, "Year 2026", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	k, ch = e.sync(k)
	if want := []string{"U " + y2026 + " 0 Year 2026 12"}; !slices.Equal(ch, want) {
		t.Errorf("after a server-side rename: %q, want %q", ch, want)
	}

	// Refusals.
	for _, tc := range []struct {
		cmd      string
		children []*wbxml.Element
		want     string
	}{
		{"FolderUpdate", []*wbxml.Element{hkey(k), wbxml.T(wbxml.FolderHierarchyServerId, inbox), wbxml.T(wbxml.FolderHierarchyParentId, "0"), wbxml.T(wbxml.FolderHierarchyDisplayName, "In")}, "3"},
		{"FolderDelete", []*wbxml.Element{hkey(k), wbxml.T(wbxml.FolderHierarchyServerId, "999")}, "4"},
		{"FolderUpdate", []*wbxml.Element{hkey(k), wbxml.T(wbxml.FolderHierarchyServerId, projects), wbxml.T(wbxml.FolderHierarchyParentId, "999"), wbxml.T(wbxml.FolderHierarchyDisplayName, "X")}, "5"},
		{"FolderDelete", []*wbxml.Element{hkey("12345"), wbxml.T(wbxml.FolderHierarchyServerId, projects)}, "9"},
		{"FolderDelete", []*wbxml.Element{wbxml.T(wbxml.FolderHierarchyServerId, projects)}, "10"},
		{"FolderSync", []*wbxml.Element{hkey("not-a-key")}, "9"},
		{"FolderSync", nil, "10"},
	} {
		if doc := e.do(tc.cmd, tc.children...); status(doc) != tc.want {
			t.Errorf("%s %v: Status %s, want %s", tc.cmd, tc.children, status(doc), tc.want)
		}
	}

	// FolderDelete.
	doc = e.do("FolderDelete", hkey(k), wbxml.T(wbxml.FolderHierarchyServerId, projects))
	if status(doc) != "1" {
		t.Fatalf("FolderDelete: Status %s", status(doc))
	}
	k = doc.ChildText(wbxml.FolderHierarchySyncKey)
	if got := e.mailboxes(); slices.Contains(got, "Archive") {
		t.Errorf("IMAP after FolderDelete: %q", got)
	}
	if _, ch := e.sync(k); len(ch) != 0 {
		t.Errorf("FolderSync echoes FolderDelete: %q", ch)
	}

	// SyncKey 0 again (Gmail's pull-to-refresh): the same ServerIds.
	_, again0 := e.sync("0")
	for _, c := range adds {
		if !slices.Contains(again0, c) {
			t.Errorf("FolderSync 0 again lost %q: %q", c, again0)
		}
	}
	if !hasLine(again0, "A "+y2026+" 0 Year 2026 12") {
		t.Errorf("FolderSync 0 again: %q", again0)
	}
	// Up to 12.1 the statuses are in the body too (FolderSync has its
	// own Status in every version), never an HTTP error.
	e.version = "12.1"
	if doc := e.do("FolderSync", hkey("12345")); status(doc) != "9" {
		t.Errorf("12.1 FolderSync with an unknown key: Status %s, want 9", status(doc))
	}
	if k, ch := e.sync("0"); k == "" || !slices.Equal(ch, again0) {
		t.Errorf("12.1 FolderSync 0: key %q %q, want %q", k, ch, again0)
	}
	if strings.Contains(e.log.String(), e.pw) {
		t.Error("the log holds the password")
	}
}

func TestFolderCommandsNeedBothStores(t *testing.T) {
	m := &fakeMail{}
	e := newEnv(t, withMail(m))
	if slices.Contains(e.srv.Commands(), "FolderSync") {
		t.Error("FolderSync registered without a device store")
	}
	e = newEnv(t, withMail(m), withStore(t))
	for _, c := range []string{"FolderSync", "FolderCreate", "FolderUpdate", "FolderDelete"} {
		if !slices.Contains(e.srv.Commands(), c) {
			t.Errorf("%s not registered", c)
		}
	}
}
