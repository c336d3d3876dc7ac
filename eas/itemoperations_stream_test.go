package eas

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/backendtest"
	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
	"github.com/easgate/easgate/eas/hierarchy"
	"github.com/easgate/easgate/eas/internal/heapmeter"
	"github.com/easgate/easgate/eas/mailsync"
	"github.com/easgate/easgate/wbxml"
)

// fileRecorder is an http.ResponseWriter that keeps the body in a
// temporary file, so that receiving a big response does not grow the
// heap that is being measured.
type fileRecorder struct {
	h    http.Header
	code int
	f    *os.File
	n    int64
}

func newFileRecorder(t testing.TB) *fileRecorder {
	f, err := os.CreateTemp(t.TempDir(), "response-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &fileRecorder{h: http.Header{}, f: f}
}

func (r *fileRecorder) Header() http.Header { return r.h }

func (r *fileRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
}

func (r *fileRecorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	n, err := r.f.Write(p)
	r.n += int64(n)
	return n, err
}

// body reads the whole response back.
func (r *fileRecorder) body(t testing.TB) []byte {
	b, err := os.ReadFile(r.f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// ioFetchBytes posts an ItemOperations Fetch of ref and returns the bytes
// of the attachment the response carries, and its Range and Total.
func (e *ioEnv) ioFetchBytes(t testing.TB, ref, rng string, multipart bool) (data []byte, gotRange, total string) {
	t.Helper()
	var opts []*wbxml.Element
	if rng != "" {
		opts = append(opts, wbxml.T(wbxml.ItemOperationsRange, rng))
	}
	w := fetchToFile(t, e.srv, ref, opts, multipart)
	body := w.body(t)
	doc := body
	if multipart {
		parts := parseMultipart(t.(*testing.T), body)
		if len(parts) != 2 {
			t.Fatalf("%d parts, want the WBXML and the attachment", len(parts))
		}
		doc = parts[0]
		data = parts[1]
	}
	d, err := wbxml.Parse(bytes.NewReader(doc), wbxml.DefaultLimits)
	if err != nil {
		t.Fatalf("response is not WBXML: %v", err)
	}
	fs := ioFetches(t.(*testing.T), d)
	if len(fs) != 1 || fs[0].ChildText(wbxml.ItemOperationsStatus) != "1" {
		t.Fatalf("Fetch answers %v, want one with Status 1", fs)
	}
	p := fs[0].Child(wbxml.ItemOperationsProperties)
	if !multipart {
		if data, err = base64.StdEncoding.DecodeString(p.ChildText(wbxml.ItemOperationsData)); err != nil {
			t.Fatalf("Data: %v", err)
		}
	} else if p.ChildText(wbxml.ItemOperationsPart) != "1" {
		t.Errorf("Part %q, want 1", p.ChildText(wbxml.ItemOperationsPart))
	}
	return data, p.ChildText(wbxml.ItemOperationsRange), p.ChildText(wbxml.ItemOperationsTotal)
}

// fetchToFile posts an ItemOperations Fetch of ref to srv, the response
// going to a file.
func fetchToFile(t testing.TB, srv http.Handler, ref string, opts []*wbxml.Element, multipart bool) *fileRecorder {
	return fetchToFileGzip(t, srv, ref, opts, multipart, false)
}

// fetchToFileGzip is fetchToFile, with Accept-Encoding: gzip when gz.
func fetchToFileGzip(t testing.TB, srv http.Handler, ref string, opts []*wbxml.Element, multipart, gz bool) *fileRecorder {
	t.Helper()
	return postToFile(t, srv, ioReq(fetchRef(ref, opts...)), multipart, gz)
}

// postToFile posts an ItemOperations request to srv, the response going
// to a file.
func postToFile(t testing.TB, srv http.Handler, req *wbxml.Element, multipart, gz bool) *fileRecorder {
	t.Helper()
	body, err := wbxml.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	r := post("ItemOperations", "14.1", body)
	if multipart {
		r.Header.Set("MS-ASAcceptMultiPart", "T")
	}
	if gz {
		r.Header.Set("Accept-Encoding", "gzip")
	}
	w := newFileRecorder(t)
	srv.ServeHTTP(w, r)
	if w.code != http.StatusOK {
		t.Fatalf("HTTP %d", w.code)
	}
	return w
}

// TestItemOperationsStreamedAttachments fetches a 12 MB base64 attachment
// and a 2 MB quoted-printable one, larger than the response spool keeps
// in memory, whole and by Range, as base64 Data and as multipart parts,
// and compares them byte for byte with what was appended to Dovecot. The
// gateway's heap must stay well below what holding the 12 MB attachment
// whole would take (see the bound at the end).
func TestItemOperationsStreamedAttachments(t *testing.T) {
	var qp strings.Builder
	for i := 0; qp.Len() < 2<<20; i++ {
		fmt.Fprintf(&qp, "Line %d: Grüße, naïve café = 100 %% — tab\there, a long line that quoted-printable must break softly at 76 characters.\n", i)
	}
	e := newIOEnvWith(t, backendtest.Binary(12<<20), qp.String())
	qpWant := []byte(strings.ReplaceAll(e.qp, "\n", "\r\n"))
	for _, tc := range []struct {
		name string
		part int
		want []byte
	}{
		{"base64", 2, e.bin},
		{"quoted-printable", 3, qpWant},
	} {
		ref := fileReference(e.inbox, e.uid, []int{tc.part})
		n := int64(len(tc.want))
		for _, multipart := range []bool{false, true} {
			for _, rng := range []struct {
				text, want, total string
				from, to          int64
			}{
				{"", "", "", 0, n},
				{"0-0", "0-0", fmt.Sprint(n), 0, 1},
				{fmt.Sprintf("1000-%d", n/2), fmt.Sprintf("1000-%d", n/2), fmt.Sprint(n), 1000, n/2 + 1},
				{fmt.Sprintf("%d-%d", n-10, n+5000), fmt.Sprintf("%d-%d", n-10, n-1), fmt.Sprint(n), n - 10, n},
			} {
				t.Run(fmt.Sprintf("%s multipart=%v range=%q", tc.name, multipart, rng.text), func(t *testing.T) {
					data, gotRange, total := e.ioFetchBytes(t, ref, rng.text, multipart)
					if !bytes.Equal(data, tc.want[rng.from:rng.to]) {
						t.Errorf("%d bytes received differ from the %d bytes %d-%d appended", len(data), rng.to-rng.from, rng.from, rng.to-1)
					}
					if gotRange != rng.want || total != rng.total {
						t.Errorf("Range %q Total %q, want %q %q", gotRange, total, rng.want, rng.total)
					}
				})
			}
		}
	}
	// The streamed answers are logged and counted with their status.
	if n := requestsCounted(t, e.srv, "ItemOperations", "200", "1"); n == 0 {
		t.Error(`no easgate_eas_requests_total{command="ItemOperations",code="200",status="1"}: streamed answers counted without their status`)
	}
	// The gateway's own share, without reading the response back.
	for _, multipart := range []bool{false, true} {
		ref := fileReference(e.inbox, e.uid, []int{2})
		peak, alloc := heapmeter.Growth(func() { fetchToFile(t, e.srv, ref, nil, multipart) })
		t.Logf("multipart=%v: %d MB attachment, heap peak %d MB above the start, %d MB allocated", multipart, len(e.bin)>>20, peak>>20, alloc>>20)
		// Held whole, the 12 MB attachment and its base64 alone are 28 MB;
		// streamed, the spool's 4 MiB stage and buffers stay near 10 MB
		// (race detector on). 20 MB tells the two apart without depending
		// on how loaded the machine is.
		if peak > 20<<20 {
			t.Errorf("multipart=%v: the heap grew by %d bytes serving a %d-byte attachment: it is held in memory", multipart, peak, len(e.bin))
		}
	}
}

// fetchItemReq is an ItemOperations Fetch of a whole message with one
// BodyPreference (and MIMESupport 2 for Type 4).
func fetchItemReq(coll, sid, bodyType string) *wbxml.Element {
	opts := wbxml.E(wbxml.ItemOperationsOptions)
	if bodyType == "4" {
		opts.Add(wbxml.T(wbxml.AirSyncMIMESupport, "2"))
	}
	opts.Add(wbxml.E(wbxml.AirSyncBaseBodyPreference, wbxml.T(wbxml.AirSyncBaseType, bodyType)))
	return ioReq(wbxml.E(wbxml.ItemOperationsFetch, wbxml.T(wbxml.ItemOperationsStore, "Mailbox"),
		wbxml.T(wbxml.AirSyncCollectionId, coll), wbxml.T(wbxml.AirSyncServerId, sid), opts))
}

// TestItemOperationsFetchItemReads checks what a whole-message Fetch
// reads: with a text body, not the message's 12 MB attachment (the heap
// grows by less than 4 MB); with a MIME body, the whole message, byte for
// byte.
func TestItemOperationsFetchItemReads(t *testing.T) {
	e := newIOEnvWith(t, backendtest.Binary(12<<20), "note")
	sid := mailsync.ServerID(e.inbox, e.uid)
	var w *fileRecorder
	peak, _ := heapmeter.Growth(func() { w = postToFile(t, e.srv, fetchItemReq(e.inbox, sid, "1"), false, false) })
	doc, err := wbxml.Parse(bytes.NewReader(w.body(t)), wbxml.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	fs := ioFetches(t, doc)
	if len(fs) != 1 || fs[0].ChildText(wbxml.ItemOperationsStatus) != "1" {
		t.Fatalf("Fetch answers %v", fs)
	}
	if b := fs[0].Child(wbxml.ItemOperationsProperties).Child(wbxml.AirSyncBaseBody); b == nil || !strings.Contains(b.ChildText(wbxml.AirSyncBaseData), "Hello, the body text.") {
		t.Errorf("Body %v, want the text", b)
	}
	t.Logf("text body of a message with a %d MB attachment: heap grew by %d KB", len(e.bin)>>20, peak>>10)
	if peak > 4<<20 {
		t.Errorf("the heap grew by %d bytes for a text body: the attachment was read", peak)
	}

	small := newIOEnv(t, 3000)
	w = postToFile(t, small.srv, fetchItemReq(small.inbox, mailsync.ServerID(small.inbox, small.uid), "4"), false, false)
	doc, err = wbxml.Parse(bytes.NewReader(w.body(t)), wbxml.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	fs = ioFetches(t, doc)
	if len(fs) != 1 || fs[0].ChildText(wbxml.ItemOperationsStatus) != "1" {
		t.Fatalf("Fetch answers %v", fs)
	}
	b := fs[0].Child(wbxml.ItemOperationsProperties).Child(wbxml.AirSyncBaseBody)
	if b == nil || b.ChildText(wbxml.AirSyncBaseType) != "4" {
		t.Fatalf("Body %v, want Type 4", b)
	}
	// The message as Dovecot stores it (attachmentMessage writes a bare
	// CR before some line ends, which Dovecot does not keep).
	rc, err := small.sess.Message(t.Context(), small.folders[small.inbox], small.uid)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := b.ChildText(wbxml.AirSyncBaseData), string(stored); got != want {
		i := 0
		for i < min(len(got), len(want)) && got[i] == want[i] {
			i++
		}
		t.Errorf("MIME body: %d bytes differ from the %d appended at %d: %q vs %q", len(got), len(want), i, got[max(0, i-20):min(len(got), i+20)], want[max(0, i-20):min(len(want), i+20)])
	}
}

// BenchmarkItemOperations50MB fetches a 50 MB attachment (base64 in the
// message) from Dovecot through the eas.Server, as base64 Data and as a
// multipart part, the response going to a file, and reports the highest
// growth of the heap while serving (heap-MB: runtime/metrics heap-object
// bytes sampled every 200 µs, less those after a GC before the request;
// see heapmeter.Growth) and the bytes allocated per fetch. Goal: heap-MB <= 16.
// The first response is checked byte for byte.
//
//	go test -run '^$' -bench ItemOperations50MB -benchtime 3x ./eas/
func BenchmarkItemOperations50MB(b *testing.B) {
	bin := backendtest.Binary(50 << 20)
	srv, ref := newAttachmentServer(b, bin)
	for _, v := range []struct{ multipart, gzip bool }{{false, false}, {true, false}, {false, true}} {
		multipart := v.multipart
		b.Run(fmt.Sprintf("multipart=%v/gzip=%v", v.multipart, v.gzip), func(b *testing.B) {
			var worst, alloc uint64
			checked := false
			for b.Loop() {
				var w *fileRecorder
				peak, a := heapmeter.Growth(func() { w = fetchToFileGzip(b, srv, ref, nil, multipart, v.gzip) })
				worst, alloc = max(worst, peak), alloc+a
				if !checked {
					b.StopTimer()
					body := w.body(b)
					if v.gzip {
						if w.h.Get("Content-Encoding") != "gzip" {
							b.Fatal("response not gzipped")
						}
						zr, err := gzip.NewReader(bytes.NewReader(body))
						if err != nil {
							b.Fatal(err)
						}
						if body, err = io.ReadAll(zr); err != nil {
							b.Fatal(err)
						}
					}
					if err := checkAttachmentResponse(body, bin, multipart); err != nil {
						b.Fatal(err)
					}
					checked = true
					b.StartTimer()
				}
				w.f.Close()
				os.Remove(w.f.Name())
			}
			b.ReportMetric(float64(worst)/(1<<20), "heap-MB")
			b.ReportMetric(float64(alloc)/float64(b.N)/(1<<20), "alloc-MB/op")
		})
	}
}

// newAttachmentServer starts Dovecot and an eas.Server on it for a device
// that has done its FolderSync, appends attachmentMessage(bin, "x") to
// the INBOX and returns the server and the FileReference of bin.
func newAttachmentServer(tb testing.TB, bin []byte) (http.Handler, string) {
	return newAttachmentServerWith(tb, bin, func(s backend.Store) backend.Store { return s })
}

// newAttachmentServerWith is newAttachmentServer with the server's mail
// store wrapped by wrap.
func newAttachmentServerWith(tb testing.TB, bin []byte, wrap func(backend.Store) backend.Store) (http.Handler, string) {
	d := testsrv.StartDovecot(tb, map[string]string{testUser: testPassword})
	ms, err := imapstore.New(imapstore.Options{Addr: d.Addr})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ms.Close() })
	e := newEnv(tb, withStore(tb), withPolicy(tb, noProvisioning), func(c *Config) { c.Mail = wrap(ms) })
	ctx := context.Background()
	sess, err := ms.Open(ctx, testUser, testPassword)
	if err != nil {
		tb.Fatal(err)
	}
	defer sess.Close()
	if r, err := (&hierarchy.Engine{Store: e.store}).FolderSync(ctx, sess, testUser, "appldev1", 0); err != nil || r.Status != 1 {
		tb.Fatalf("FolderSync: %v, status %d", err, r.Status)
	}
	h, err := hierarchy.Load(ctx, e.store, testUser, "appldev1")
	if err != nil {
		tb.Fatal(err)
	}
	fs, err := sess.Folders(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	for _, f := range fs {
		if f.Role != backend.RoleInbox {
			continue
		}
		sid, _ := h.ServerID(f.ID)
		raw := attachmentMessage(bin, "x")
		uid, err := sess.Append(ctx, f.ID, backend.AppendMessage{Size: int64(len(raw)), Body: strings.NewReader(raw)})
		if err != nil {
			tb.Fatal(err)
		}
		return e.srv, fileReference(sid, uid, []int{2})
	}
	tb.Fatal("no INBOX")
	return nil, ""
}

// successfulFetch reads an ItemOperations response with one Fetch, in the
// multipart form (the document, then one part: data) or not, and returns
// its Fetch, which must have succeeded.
func successfulFetch(body []byte, multipart bool) (fetch *wbxml.Element, data []byte, err error) {
	doc := body
	if multipart {
		if len(body) < 20 || binary.LittleEndian.Uint32(body) != 2 {
			return nil, nil, fmt.Errorf("not a two-part multipart body (%d bytes)", len(body))
		}
		off0, n0 := binary.LittleEndian.Uint32(body[4:]), binary.LittleEndian.Uint32(body[8:])
		off1, n1 := binary.LittleEndian.Uint32(body[12:]), binary.LittleEndian.Uint32(body[16:])
		if off0 != 20 || off1 != off0+n0 || int(off1+n1) != len(body) {
			return nil, nil, fmt.Errorf("multipart table %d+%d, %d+%d for %d bytes", off0, n0, off1, n1, len(body))
		}
		doc, data = body[off0:off1], body[off1:]
	}
	// 50 MB of base64 is beyond what a request may hold.
	d, err := wbxml.Parse(bytes.NewReader(doc), wbxml.Limits{MaxBytes: 1 << 30, MaxStringLen: 1 << 30})
	if err != nil {
		return nil, nil, err
	}
	f := d.Child(wbxml.ItemOperationsResponse).Child(wbxml.ItemOperationsFetch)
	if f == nil || f.ChildText(wbxml.ItemOperationsStatus) != "1" {
		return nil, nil, fmt.Errorf("no successful Fetch in the response")
	}
	return f, data, nil
}

// checkAttachmentResponse checks that an ItemOperations response carries
// want, in the multipart or the base64 form.
func checkAttachmentResponse(body, want []byte, multipart bool) error {
	f, data, err := successfulFetch(body, multipart)
	if err != nil {
		return err
	}
	if !multipart {
		if data, err = base64.StdEncoding.DecodeString(f.Child(wbxml.ItemOperationsProperties).ChildText(wbxml.ItemOperationsData)); err != nil {
			return err
		}
	}
	if !bytes.Equal(data, want) {
		return fmt.Errorf("%d bytes received differ from the %d-byte attachment", len(data), len(want))
	}
	return nil
}

// unsizedStore hands out sessions whose part readers do not know their
// size, as the backend's are on a server without IMAP BINARY.
type unsizedStore struct{ backend.Store }

func (s unsizedStore) Open(ctx context.Context, user, password string) (backend.Session, error) {
	sess, err := s.Store.Open(ctx, user, password)
	if err != nil {
		return nil, err
	}
	return unsizedSession{sess}, nil
}

type unsizedSession struct{ backend.Session }

func (s unsizedSession) OpenPart(ctx context.Context, id backend.FolderID, uid backend.UID, part string, opts backend.PartOptions) (backend.PartReader, error) {
	r, err := s.Session.OpenPart(ctx, id, uid, part, opts)
	if err != nil {
		return nil, err
	}
	return unsizedReader{r}, nil
}

type unsizedReader struct{ backend.PartReader }

func (unsizedReader) Size() int64  { return -1 }
func (unsizedReader) Total() int64 { return -1 }

// TestItemOperationsUnsizedAttachment fetches an attachment whose size the
// backend cannot tell before reading it (a server without BINARY): the
// gateway spools it to learn the size, for the Range and Total and for
// the multipart header.
func TestItemOperationsUnsizedAttachment(t *testing.T) {
	bin := backendtest.Binary(5<<20 + 7)
	srv, ref := newAttachmentServerWith(t, bin, func(s backend.Store) backend.Store { return unsizedStore{s} })
	n := int64(len(bin))
	for _, multipart := range []bool{false, true} {
		for _, rng := range []struct {
			text, want, total string
			from, to          int64
			status            string
		}{
			{text: "", from: 0, to: n, status: "1"},
			{text: "100-199", want: "100-199", total: fmt.Sprint(n), from: 100, to: 200, status: "1"},
			{text: fmt.Sprintf("%d-%d", n-3, n+3), want: fmt.Sprintf("%d-%d", n-3, n-1), total: fmt.Sprint(n), from: n - 3, to: n, status: "1"},
			{text: fmt.Sprintf("%d-%d", n, n+3), status: "8"},
		} {
			var opts []*wbxml.Element
			if rng.text != "" {
				opts = append(opts, wbxml.T(wbxml.ItemOperationsRange, rng.text))
			}
			body := fetchToFile(t, srv, ref, opts, multipart).body(t)
			doc, data := body, []byte(nil)
			if multipart {
				parts := parseMultipart(t, body)
				doc = parts[0]
				if len(parts) > 1 {
					data = parts[1]
				}
			}
			d, err := wbxml.Parse(bytes.NewReader(doc), wbxml.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			fs := ioFetches(t, d)
			if len(fs) != 1 || fs[0].ChildText(wbxml.ItemOperationsStatus) != rng.status {
				t.Fatalf("multipart=%v range %q: Fetch answers %v, want Status %s", multipart, rng.text, fs, rng.status)
			}
			if rng.status != "1" {
				continue
			}
			p := fs[0].Child(wbxml.ItemOperationsProperties)
			if !multipart {
				if data, err = base64.StdEncoding.DecodeString(p.ChildText(wbxml.ItemOperationsData)); err != nil {
					t.Fatal(err)
				}
			}
			if !bytes.Equal(data, bin[rng.from:rng.to]) {
				t.Errorf("multipart=%v range %q: %d bytes differ from bytes %d-%d", multipart, rng.text, len(data), rng.from, rng.to-1)
			}
			if p.ChildText(wbxml.ItemOperationsRange) != rng.want || p.ChildText(wbxml.ItemOperationsTotal) != rng.total {
				t.Errorf("multipart=%v range %q: Range %q Total %q, want %q %q", multipart, rng.text,
					p.ChildText(wbxml.ItemOperationsRange), p.ChildText(wbxml.ItemOperationsTotal), rng.want, rng.total)
			}
		}
	}
}

// TestItemOperationsInlineSeveral fetches two attachments and an unknown
// one in one request as base64 Data: each is streamed in its turn.
func TestItemOperationsInlineSeveral(t *testing.T) {
	e := newIOEnv(t, 200_000)
	_, doc := e.post(t, "ItemOperations", "ItemOperationsResponse", ioReq(
		fetchRef(fileReference(e.inbox, e.uid, []int{2})),
		fetchRef("bogus"),
		fetchRef(fileReference(e.inbox, e.uid, []int{3}), wbxml.T(wbxml.ItemOperationsRange, "0-4")),
	))
	fs := ioFetches(t, doc)
	if len(fs) != 3 {
		t.Fatalf("%d Fetch answers, want 3", len(fs))
	}
	want := [][]byte{e.bin, nil, []byte(e.qp[:5])}
	for i, status := range []string{"1", "15", "1"} {
		if got := fs[i].ChildText(wbxml.ItemOperationsStatus); got != status {
			t.Errorf("Fetch %d: Status %s, want %s", i, got, status)
		}
		if want[i] == nil {
			continue
		}
		data, err := base64.StdEncoding.DecodeString(fs[i].Child(wbxml.ItemOperationsProperties).ChildText(wbxml.ItemOperationsData))
		if err != nil || !bytes.Equal(data, want[i]) {
			t.Errorf("Fetch %d: %d bytes (%v), want %d", i, len(data), err, len(want[i]))
		}
	}
}

// TestItemOperationsCorruptAttachment fetches an attachment whose base64
// is invalid: Dovecot refuses to decode it (NO [PARSE]), the Fetch gets
// Status 3 and the request's other Fetches are answered as usual.
func TestItemOperationsCorruptAttachment(t *testing.T) {
	e := newIOEnv(t, 1000)
	raw := "From: s@example.com\r\nSubject: corrupt\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n" +
		"--B\r\nContent-Type: text/plain\r\n\r\nbody\r\n" +
		"--B\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC!!AwQFBgcICQ\r\n--B--\r\n"
	uid, err := e.sess.Append(t.Context(), e.folders[e.inbox], backend.AppendMessage{Size: int64(len(raw)), Body: strings.NewReader(raw)})
	if err != nil {
		t.Fatal(err)
	}
	req := ioReq(fetchRef(fileReference(e.inbox, uid, []int{2})), fetchRef(fileReference(e.inbox, e.uid, []int{2})))
	for _, multipart := range []bool{false, true} {
		body := postToFile(t, e.srv, req, multipart, false).body(t)
		doc := body
		if multipart {
			parts := parseMultipart(t, body)
			if len(parts) != 2 || !bytes.Equal(parts[1], e.bin) {
				t.Fatalf("multipart: %d parts, want the WBXML and the good attachment", len(parts))
			}
			doc = parts[0]
		}
		d, err := wbxml.Parse(bytes.NewReader(doc), wbxml.DefaultLimits)
		if err != nil {
			t.Fatal(err)
		}
		fs := ioFetches(t, d)
		if len(fs) != 2 || fs[0].ChildText(wbxml.ItemOperationsStatus) != "3" || fs[1].ChildText(wbxml.ItemOperationsStatus) != "1" {
			t.Fatalf("multipart=%v: Fetch answers %v, want Status 3 then 1", multipart, fs)
		}
		if fs[0].Has(wbxml.ItemOperationsProperties) {
			t.Errorf("multipart=%v: Properties in the failed Fetch", multipart)
		}
	}
}

// requestsCounted returns easgate_eas_requests_total for the labels.
func requestsCounted(t *testing.T, srv *Server, cmd, code, status string) float64 {
	t.Helper()
	mfs, err := srv.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "easgate_eas_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["command"] == cmd && labels["code"] == code && labels["status"] == status {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}
