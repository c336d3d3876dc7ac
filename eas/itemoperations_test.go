package eas

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"mime/quotedprintable"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/backendtest"
	"github.com/easgate/easgate/eas/mailsync"
	"github.com/easgate/easgate/wbxml"
	"github.com/easgate/easgate/wbxml/wbxmltest"
)

// attachmentMessage is a multipart/mixed message: 1 a text body, 2 a
// base64 application/octet-stream attachment of bin, 3 a quoted-printable
// text attachment of qp.
func attachmentMessage(bin []byte, qp string) string {
	var b strings.Builder
	b.WriteString("From: s@example.com\r\nTo: jane@example.com\r\nSubject: with attachments\r\nMessage-ID: <att@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"BOUND\"\r\n\r\n")
	b.WriteString("--BOUND\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello, the body text.\r\n")
	b.WriteString("--BOUND\r\nContent-Type: application/octet-stream; name=\"blob.bin\"\r\nContent-Disposition: attachment; filename=\"blob.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString(bin)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	b.WriteString("--BOUND\r\nContent-Type: text/plain; name=\"note.txt\"\r\nContent-Disposition: attachment; filename=\"note.txt\"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	var q bytes.Buffer
	w := quotedprintable.NewWriter(&q)
	w.Write([]byte(qp))
	w.Close()
	b.WriteString(strings.ReplaceAll(q.String(), "\n", "\r\n") + "\r\n--BOUND--\r\n")
	return b.String()
}

type ioEnv struct {
	*syncEnv
	inbox string
	uid   backend.UID
	bin   []byte
	qp    string
}

func newIOEnv(t *testing.T, binSize int) *ioEnv {
	return newIOEnvWith(t, backendtest.Binary(binSize), "Grüße = 100 % \nline two\n")
}

// newIOEnvWith appends attachmentMessage(bin, qp) to the INBOX.
func newIOEnvWith(t *testing.T, bin []byte, qp string) *ioEnv {
	e := newSyncEnv(t)
	ie := &ioEnv{syncEnv: e, inbox: e.ids["INBOX"], bin: bin, qp: qp}
	raw := attachmentMessage(ie.bin, ie.qp)
	uid, err := e.sess.Append(context.Background(), e.folders[ie.inbox], backend.AppendMessage{Size: int64(len(raw)), Body: strings.NewReader(raw), Date: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	ie.uid = uid
	return ie
}

func fetchRef(ref string, opts ...*wbxml.Element) *wbxml.Element {
	f := wbxml.E(wbxml.ItemOperationsFetch, wbxml.T(wbxml.ItemOperationsStore, "Mailbox"), wbxml.T(wbxml.AirSyncBaseFileReference, ref))
	if len(opts) > 0 {
		f.Add(wbxml.E(wbxml.ItemOperationsOptions, opts...))
	}
	return f
}

func ioReq(ops ...*wbxml.Element) *wbxml.Element {
	return wbxml.E(wbxml.ItemOperationsItemOperations, ops...)
}

// ioFetches returns the response's Fetch elements, checking the top status.
func ioFetches(t *testing.T, doc *wbxml.Element) []*wbxml.Element {
	t.Helper()
	if doc == nil || doc.ChildText(wbxml.ItemOperationsStatus) != "1" {
		t.Fatalf("top-level status not 1: %v", doc)
	}
	return doc.Child(wbxml.ItemOperationsResponse).ChildrenOf(wbxml.ItemOperationsFetch)
}

func TestItemOperationsFetchAttachment(t *testing.T) {
	e := newIOEnv(t, 3000)
	ref := fileReference(e.inbox, e.uid, []int{2})
	tests := []struct {
		name, ref, rng     string
		status             string
		want               []byte
		ctype, range_, tot string
	}{
		{name: "whole", ref: ref, status: "1", want: e.bin, ctype: "application/octet-stream"},
		{name: "range", ref: ref, rng: "10-99", status: "1", want: e.bin[10:100], ctype: "application/octet-stream", range_: "10-99", tot: "3000"},
		{name: "range past the end is cut", ref: ref, rng: "2990-9999", status: "1", want: e.bin[2990:], ctype: "application/octet-stream", range_: "2990-2999", tot: "3000"},
		{name: "range outside", ref: ref, rng: "3000-4000", status: "8"},
		{name: "range malformed", ref: ref, rng: "9-1", status: "8"},
		{name: "quoted-printable", ref: fileReference(e.inbox, e.uid, []int{3}), status: "1", want: []byte(strings.ReplaceAll(e.qp, "\n", "\r\n")), ctype: "text/plain"},
		{name: "empty", ref: "", status: "15"},
		{name: "garbage", ref: "garbage", status: "15"},
		{name: "no uid", ref: e.inbox + ":0:2", status: "15"},
		{name: "unknown uid", ref: fileReference(e.inbox, e.uid+100, []int{2}), status: "15"},
		{name: "unknown part", ref: fileReference(e.inbox, e.uid, []int{9}), status: "15"},
		{name: "multipart part", ref: e.inbox + fmt.Sprintf(":%d:1.x", e.uid), status: "15"},
		{name: "unknown collection", ref: fileReference("9999", e.uid, []int{2}), status: "15"},
		{name: "IMAP section injection", ref: e.inbox + fmt.Sprintf(":%d:HEADER", e.uid), status: "15"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts []*wbxml.Element
			if tc.rng != "" {
				opts = append(opts, wbxml.T(wbxml.ItemOperationsRange, tc.rng))
			}
			_, doc := e.post(t, "ItemOperations", "ItemOperationsResponse", ioReq(fetchRef(tc.ref, opts...)))
			fs := ioFetches(t, doc)
			if len(fs) != 1 {
				t.Fatalf("%d Fetch answers, want 1", len(fs))
			}
			f := fs[0]
			if got := f.ChildText(wbxml.ItemOperationsStatus); got != tc.status {
				t.Fatalf("Status %s, want %s", got, tc.status)
			}
			if got := f.ChildText(wbxml.AirSyncBaseFileReference); got != tc.ref {
				t.Errorf("FileReference %q, want %q", got, tc.ref)
			}
			if tc.status != "1" {
				if f.Has(wbxml.ItemOperationsProperties) {
					t.Error("Properties in a failed Fetch")
				}
				return
			}
			p := f.Child(wbxml.ItemOperationsProperties)
			data, err := base64.StdEncoding.DecodeString(p.ChildText(wbxml.ItemOperationsData))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, tc.want) {
				t.Errorf("data: %d bytes, want %d (equal prefix? %v)", len(data), len(tc.want), bytes.HasPrefix(tc.want, data))
			}
			if got := p.ChildText(wbxml.AirSyncBaseContentType); got != tc.ctype {
				t.Errorf("ContentType %q, want %q", got, tc.ctype)
			}
			if got := p.ChildText(wbxml.ItemOperationsRange); got != tc.range_ {
				t.Errorf("Range %q, want %q", got, tc.range_)
			}
			if got := p.ChildText(wbxml.ItemOperationsTotal); got != tc.tot {
				t.Errorf("Total %q, want %q", got, tc.tot)
			}
		})
	}
}

// parseMultipart splits an application/vnd.ms-sync.multipart body.
func parseMultipart(t *testing.T, b []byte) [][]byte {
	t.Helper()
	if len(b) < 4 {
		t.Fatalf("multipart body of %d bytes", len(b))
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < 1 || 4+8*n > len(b) {
		t.Fatalf("multipart part count %d in %d bytes", n, len(b))
	}
	var parts [][]byte
	end := 4 + 8*n
	for i := range n {
		off := int(binary.LittleEndian.Uint32(b[4+8*i:]))
		l := int(binary.LittleEndian.Uint32(b[8+8*i:]))
		if off != end || off+l > len(b) {
			t.Fatalf("part %d at %d+%d, previous ended at %d, body %d bytes", i, off, l, end, len(b))
		}
		parts = append(parts, b[off:off+l])
		end = off + l
	}
	if end != len(b) {
		t.Fatalf("%d bytes after the last part", len(b)-end)
	}
	return parts
}

func TestItemOperationsMultipart(t *testing.T) {
	e := newIOEnv(t, 200_000)
	body := mustMarshal(t, ioReq(
		fetchRef(fileReference(e.inbox, e.uid, []int{2})),
		fetchRef("bogus"),
		fetchRef(fileReference(e.inbox, e.uid, []int{3}), wbxml.T(wbxml.ItemOperationsRange, "0-4")),
	))
	r := post("ItemOperations", "14.1", body)
	r.Header.Set("MS-ASAcceptMultiPart", "T")
	r.Header.Del("Accept-Encoding")
	w := e.do(r)
	if w.Code != 200 || w.Header().Get("Content-Type") != ContentTypeMultipart {
		t.Fatalf("HTTP %d, Content-Type %q", w.Code, w.Header().Get("Content-Type"))
	}
	parts := parseMultipart(t, w.Body.Bytes())
	if len(parts) != 3 {
		t.Fatalf("%d parts, want 3 (WBXML and two attachments)", len(parts))
	}
	wbxmltest.ValidateResponse(t, "ItemOperationsResponse", parts[0])
	doc, err := wbxml.Parse(bytes.NewReader(parts[0]), wbxml.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	fs := ioFetches(t, doc)
	if len(fs) != 3 {
		t.Fatalf("%d Fetch answers, want 3", len(fs))
	}
	wantStatus := []string{"1", "15", "1"}
	wantPart := []string{"1", "", "2"}
	for i, f := range fs {
		if got := f.ChildText(wbxml.ItemOperationsStatus); got != wantStatus[i] {
			t.Errorf("Fetch %d: Status %s, want %s", i, got, wantStatus[i])
		}
		if p := f.Child(wbxml.ItemOperationsProperties); p != nil {
			if p.Has(wbxml.ItemOperationsData) {
				t.Errorf("Fetch %d: Data in a multipart response", i)
			}
			if got := p.ChildText(wbxml.ItemOperationsPart); got != wantPart[i] {
				t.Errorf("Fetch %d: Part %q, want %q", i, got, wantPart[i])
			}
		}
	}
	if !bytes.Equal(parts[1], e.bin) {
		t.Errorf("part 1: %d bytes differ from the %d-byte attachment", len(parts[1]), len(e.bin))
	}
	if got := string(parts[2]); got != e.qp[:5] {
		t.Errorf("part 2 %q, want the first 5 bytes of the quoted-printable attachment", got)
	}
}

func TestItemOperationsFetchItem(t *testing.T) {
	e := newIOEnv(t, 100)
	fetch := func(coll, sid string) *wbxml.Element {
		return wbxml.E(wbxml.ItemOperationsFetch, wbxml.T(wbxml.ItemOperationsStore, "Mailbox"),
			wbxml.T(wbxml.AirSyncCollectionId, coll), wbxml.T(wbxml.AirSyncServerId, sid),
			wbxml.E(wbxml.ItemOperationsOptions, wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "1"))))
	}
	sid := mailsync.ServerID(e.inbox, e.uid)
	_, doc := e.post(t, "ItemOperations", "ItemOperationsResponse", ioReq(
		fetch(e.inbox, sid),
		fetch(e.inbox, mailsync.ServerID(e.inbox, e.uid+50)),
		fetch(e.inbox, "nonsense"),
		fetch("9999", sid),
		wbxml.E(wbxml.ItemOperationsFetch, wbxml.T(wbxml.ItemOperationsStore, "GAL"), wbxml.T(wbxml.AirSyncCollectionId, e.inbox), wbxml.T(wbxml.AirSyncServerId, sid)),
	))
	fs := ioFetches(t, doc)
	want := []string{"1", "6", "6", "6", "9"}
	if len(fs) != len(want) {
		t.Fatalf("%d Fetch answers, want %d", len(fs), len(want))
	}
	for i, f := range fs {
		if got := f.ChildText(wbxml.ItemOperationsStatus); got != want[i] {
			t.Errorf("Fetch %d: Status %s, want %s", i, got, want[i])
		}
	}
	p := fs[0].Child(wbxml.ItemOperationsProperties)
	if p == nil {
		t.Fatal("no Properties")
	}
	if got := fs[0].ChildText(wbxml.AirSyncServerId); got != sid {
		t.Errorf("ServerId %q, want %q", got, sid)
	}
	if got := p.ChildText(wbxml.EmailSubject); got != "with attachments" {
		t.Errorf("Subject %q", got)
	}
	b := p.Child(wbxml.AirSyncBaseBody)
	if b == nil || !strings.Contains(b.ChildText(wbxml.AirSyncBaseData), "Hello, the body text.") || b.ChildText(wbxml.AirSyncBaseTruncated) == "1" {
		t.Errorf("Body %v, want the whole text", b)
	}
	// The attachments' FileReferences are ones ItemOperations resolves.
	var refs []string
	if as := p.Child(wbxml.AirSyncBaseAttachments); as != nil {
		for _, a := range as.ChildrenOf(wbxml.AirSyncBaseAttachment) {
			refs = append(refs, a.ChildText(wbxml.AirSyncBaseFileReference))
		}
	}
	wantRefs := []string{fileReference(e.inbox, e.uid, []int{2}), fileReference(e.inbox, e.uid, []int{3})}
	if fmt.Sprint(refs) != fmt.Sprint(wantRefs) {
		t.Errorf("attachment FileReferences %q, want %q", refs, wantRefs)
	}
}

func TestItemOperationsEmptyFolderContents(t *testing.T) {
	e := newIOEnv(t, 10)
	work := e.ids["Work"]
	for i := range 3 {
		e.appendMsg(t, work, i)
	}
	_, doc := e.post(t, "ItemOperations", "ItemOperationsResponse", ioReq(
		wbxml.E(wbxml.ItemOperationsEmptyFolderContents, wbxml.T(wbxml.AirSyncCollectionId, work)),
		wbxml.E(wbxml.ItemOperationsEmptyFolderContents, wbxml.T(wbxml.AirSyncCollectionId, "9999")),
		wbxml.E(wbxml.ItemOperationsMove, &wbxml.Element{Tag: wbxml.ItemOperationsConversationId, Opaque: []byte("conv1"), IsOpaque: true}, wbxml.T(wbxml.ItemOperationsDstFldId, work)),
	))
	if mv := doc.Child(wbxml.ItemOperationsResponse).ChildrenOf(wbxml.ItemOperationsMove); len(mv) != 1 || mv[0].ChildText(wbxml.ItemOperationsStatus) != "156" || string(mv[0].Child(wbxml.ItemOperationsConversationId).Opaque) != "conv1" {
		t.Errorf("Move answers %v, want one with Status 156 and ConversationId conv1", mv)
	}
	if doc.ChildText(wbxml.ItemOperationsStatus) != "1" {
		t.Fatalf("top-level status %q", doc.ChildText(wbxml.ItemOperationsStatus))
	}
	efs := doc.Child(wbxml.ItemOperationsResponse).ChildrenOf(wbxml.ItemOperationsEmptyFolderContents)
	if len(efs) != 2 {
		t.Fatalf("%d answers, want 2", len(efs))
	}
	for i, want := range []struct{ id, status string }{{work, "1"}, {"9999", "6"}} {
		if efs[i].ChildText(wbxml.AirSyncCollectionId) != want.id || efs[i].ChildText(wbxml.ItemOperationsStatus) != want.status {
			t.Errorf("answer %d: %s status %s, want %s status %s", i, efs[i].ChildText(wbxml.AirSyncCollectionId), efs[i].ChildText(wbxml.ItemOperationsStatus), want.id, want.status)
		}
	}
	ctx := context.Background()
	left, err := e.sess.Search(ctx, e.folders[work], time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if left.Len() != 0 {
		t.Errorf("Work still holds %v", left)
	}
	// The other folder is untouched.
	in, err := e.sess.Search(ctx, e.folders[e.inbox], time.Time{})
	if err != nil || in.Len() != 1 {
		t.Errorf("INBOX emptied too (%v, %v)", in, err)
	}
}

func TestParseFileReference(t *testing.T) {
	for _, tc := range []struct {
		in         string
		coll, part string
		uid        backend.UID
		ok         bool
	}{
		{"5:12:2", "5", "2", 12, true},
		{"5:12:2.1.3", "5", "2.1.3", 12, true},
		{"a:b:12:2", "a:b", "2", 12, true},
		{"5:12:", "", "", 0, false},
		{"5:12:0", "", "", 0, false},
		{"5:12:02", "", "", 0, false},
		{"5:12:1.TEXT", "", "", 0, false},
		{":12:2", "", "", 0, false},
		{"5:x:2", "", "", 0, false},
		{"5:4294967296:2", "", "", 0, false},
		{"12:2", "", "", 0, false},
	} {
		coll, uid, part, ok := parseFileReference(tc.in)
		if coll != tc.coll || uid != tc.uid || part != tc.part || ok != tc.ok {
			t.Errorf("parseFileReference(%q) = %q %d %q %v, want %q %d %q %v", tc.in, coll, uid, part, ok, tc.coll, tc.uid, tc.part, tc.ok)
		}
	}
	if got := fileReference("5", 12, []int{2, 1}); got != "5:12:2.1" {
		t.Errorf("fileReference = %q", got)
	}
}

// TestItemOperationsFileReferenceFromSync fetches an attachment by the
// FileReference a Sync Add listed, as a phone does, and compares the bytes.
func TestItemOperationsFileReferenceFromSync(t *testing.T) {
	e := newIOEnv(t, 2048)
	_, doc := e.post(t, "Sync", "SyncResponse", syncReq(collReq("0", e.inbox, 0)))
	key := collection(t, doc, e.inbox).ChildText(wbxml.AirSyncSyncKey)
	_, doc = e.post(t, "Sync", "SyncResponse", syncReq(collReq(key, e.inbox, 10)))
	var refs []string
	for _, add := range collection(t, doc, e.inbox).Child(wbxml.AirSyncCommands).ChildrenOf(wbxml.AirSyncAdd) {
		atts := add.Child(wbxml.AirSyncApplicationData).Child(wbxml.AirSyncBaseAttachments)
		if atts == nil {
			continue
		}
		for _, a := range atts.ChildrenOf(wbxml.AirSyncBaseAttachment) {
			if a.ChildText(wbxml.AirSyncBaseDisplayName) == "blob.bin" {
				refs = append(refs, a.ChildText(wbxml.AirSyncBaseFileReference))
			}
		}
	}
	if len(refs) != 1 {
		t.Fatalf("Sync listed %d FileReferences for blob.bin, want 1: %v", len(refs), refs)
	}
	_, doc = e.post(t, "ItemOperations", "ItemOperationsResponse", ioReq(fetchRef(refs[0])))
	fs := ioFetches(t, doc)
	if len(fs) != 1 || fs[0].ChildText(wbxml.ItemOperationsStatus) != "1" {
		t.Fatalf("Fetch of %q: %v", refs[0], fs)
	}
	data := fs[0].Child(wbxml.ItemOperationsProperties).ChildText(wbxml.ItemOperationsData)
	got, err := base64.StdEncoding.DecodeString(data)
	if err != nil || !bytes.Equal(got, e.bin) {
		t.Errorf("attachment bytes differ (err %v, %d bytes, want %d)", err, len(got), len(e.bin))
	}
}

// TestItemOperationsFetchLongID: a Fetch by LongId gets the same item as
// by ServerId and echoes the LongId; a LongId of another folder that is
// not in the device's hierarchy, or a malformed one, is not found.
func TestItemOperationsFetchLongID(t *testing.T) {
	e := newIOEnv(t, 100)
	fetch := func(long string) *wbxml.Element {
		return wbxml.E(wbxml.ItemOperationsFetch, wbxml.T(wbxml.ItemOperationsStore, "Mailbox"),
			wbxml.T(wbxml.SearchLongId, long),
			wbxml.E(wbxml.ItemOperationsOptions, wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, "1"))))
	}
	long := mailsync.ServerID(e.inbox, e.uid)
	_, doc := e.post(t, "ItemOperations", "ItemOperationsResponse", ioReq(
		fetch(long), fetch("9999:"+fmt.Sprint(e.uid)), fetch("nonsense"), fetch(mailsync.ServerID(e.inbox, e.uid+50))))
	fs := ioFetches(t, doc)
	want := []string{"1", "6", "6", "6"}
	if len(fs) != len(want) {
		t.Fatalf("%d Fetch answers, want %d", len(fs), len(want))
	}
	for i, f := range fs {
		if got := f.ChildText(wbxml.ItemOperationsStatus); got != want[i] {
			t.Errorf("Fetch %d: Status %s, want %s", i, got, want[i])
		}
	}
	if got := fs[0].ChildText(wbxml.SearchLongId); got != long || fs[0].Has(wbxml.AirSyncServerId) {
		t.Errorf("answer names %v, want LongId %q only", fs[0], long)
	}
	if p := fs[0].Child(wbxml.ItemOperationsProperties); p == nil || p.ChildText(wbxml.EmailSubject) != "with attachments" {
		t.Errorf("Properties %v", p)
	}
}
