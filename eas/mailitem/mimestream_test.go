package mailitem

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/easgate/easgate/wbxml"
)

// noFullSource fails the test when the whole message is read.
type noFullSource struct {
	Source
	t *testing.T
}

func (s noFullSource) Full(context.Context) (io.ReadCloser, int64, error) {
	s.t.Error("BuildStreamed read the whole message")
	return nil, 0, errors.New("no Full here")
}

func (s noFullSource) Warnings() []string { return s.Source.(WarningSource).Warnings() }

// streamMessages are the test corpus (testdata/*.eml) and messages whose
// bytes need sanitizing: invalid UTF-8, controls, NULs, U+FFFE and U+FFFF,
// bare CR and LF, a character cut by Copy's reads, and none at all.
func streamMessages(t *testing.T) map[string][]byte {
	emls, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(emls) == 0 {
		t.Fatalf("no test messages: %v", err)
	}
	msgs := map[string][]byte{}
	for _, eml := range emls {
		raw, err := os.ReadFile(eml)
		if err != nil {
			t.Fatal(err)
		}
		msgs[filepath.Base(eml)] = raw
	}
	hdr := "From: J\xf6rg <j@example.org>\r\nSubject: Gr\xfc\xdfe\x01\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
	straddle := hdr + strings.Repeat("a", mimeChunk-len(hdr)-1) + "😀 then €\xe2\x82 cut\r\n"
	msgs["8-bit junk"] = []byte(hdr + "caf\xe9 \x00\x1b[1m \xef\xbf\xbe \xef\xbf\xbf \xed\xa0\x80 bare\rcr bare\nlf \xf0\x9f\x98\r\n")
	msgs["character across reads"] = []byte(straddle)
	msgs["ends inside a character"] = []byte(hdr + "end \xf0\x9f\x98")
	msgs["empty"] = nil
	msgs["binary junk"] = []byte("\x00\x01\x02\xff\xfe\r\n\r\n\x00\x00\xff")
	return msgs
}

// TestBuildStreamedMatchesBuild builds every message of streamMessages
// under many options with Build and with BuildStreamed and Copy: the
// items must be byte for byte the same, and BuildStreamed must not read
// the whole message. Copy reads in one-byte, half-size and whole reads.
func TestBuildStreamedMatchesBuild(t *testing.T) {
	prefs := [][]BodyPreference{
		{{Type: BodyMIME}},
		{{Type: BodyMIME, Preview: 255}},
		{{Type: BodyMIME, AllOrNone: true}},
		{{Type: BodyMIME, TruncationSize: 100}},
		{{Type: BodyHTML, TruncationSize: 500}, {Type: BodyMIME}},
		{{Type: BodyPlain}},
		nil,
	}
	readers := map[string]func(io.Reader) io.Reader{
		"whole":    func(r io.Reader) io.Reader { return r },
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
	}
	streamed := 0
	for name, raw := range streamMessages(t) {
		for _, p := range prefs {
			for _, mime := range []MIMESupport{MIMENever, MIMESMIMEOnly, MIMEAlways} {
				for _, ver := range []string{"12.1", "14.1", "16.1"} {
					opts := Options{Version: ver, BodyPreferences: p, MIMESupport: mime, FileRef: testFileRef}
					meta := Meta{UID: 42, Flags: []string{`\Seen`}, InternalDate: testDate}
					what := fmt.Sprintf("%s %+v mime=%d %s", name, p, mime, ver)
					want, err := Build(context.Background(), FromBytes(raw, meta), opts)
					if err != nil {
						t.Fatalf("%s: Build: %v", what, err)
					}
					wantBytes, err := wbxml.Marshal(syncResponse(want.ApplicationData))
					if err != nil {
						t.Fatal(err)
					}
					for rname, wrap := range readers {
						src := FromBytes(raw, meta)
						plan := PlanReads(mustStructure(t, src), opts)
						var (
							got *Item
							m   *MIMEBody
						)
						if plan.Full && plan.FullMax == 0 {
							got, m, err = BuildStreamed(context.Background(), noFullSource{src, t}, opts)
						} else {
							got, m, err = BuildStreamed(context.Background(), src, opts)
						}
						if err != nil {
							t.Fatalf("%s: BuildStreamed: %v", what, err)
						}
						if (m != nil) != (want.BodyType == BodyMIME && plan.FullMax == 0) {
							t.Fatalf("%s: MIMEBody %v for body type %d, plan %+v", what, m != nil, want.BodyType, plan)
						}
						if m != nil {
							streamed++
							var data bytes.Buffer
							n, err := m.Copy(&data, wrap(bytes.NewReader(raw)))
							if err != nil || n != int64(data.Len()) {
								t.Fatalf("%s: Copy: %d bytes, %v; %d written", what, n, err, data.Len())
							}
							m.Data().Text = data.String()
						}
						gotBytes, err := wbxml.Marshal(syncResponse(got.ApplicationData))
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(gotBytes, wantBytes) {
							t.Fatalf("%s, %s reads: the streamed item differs from Build's:\n%s\nwant\n%s", what, rname, toXML(t, syncResponse(got.ApplicationData)), toXML(t, syncResponse(want.ApplicationData)))
						}
						if got.MessageClass != want.MessageClass || got.BodyType != want.BodyType || strings.Join(got.Warnings, "\n") != strings.Join(want.Warnings, "\n") {
							t.Errorf("%s: item %q %d %q, want %q %d %q", what, got.MessageClass, got.BodyType, got.Warnings, want.MessageClass, want.BodyType, want.Warnings)
						}
					}
				}
			}
		}
	}
	if streamed == 0 {
		t.Fatal("no body was streamed")
	}
}

func mustStructure(t *testing.T, src Source) *Part {
	root, err := src.Structure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// chunkReader yields its bytes in reads of random sizes.
type chunkReader struct {
	b   []byte
	rnd *rand.Rand
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := min(len(p), len(r.b), 1+r.rnd.IntN(9))
	copy(p, r.b[:n])
	r.b = r.b[n:]
	return n, nil
}

// TestCopyMatchesSanitize copies random bytes, rich in multi-byte
// characters, broken ones and controls, in reads of random sizes, and
// compares with sanitize on the whole.
func TestCopyMatchesSanitize(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "\r\n", "\t", "\x00", "\x07", "\x1f", "é", "€", "😀", "\xef\xbf\xbe", "\xef\xbf\xbf", "\xef\xbf\xbd",
		"\xe2\x82", "\xf0\x9f", "\xf0", "\x80", "\xbf", "\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", " "}
	for i := range 2000 {
		var b strings.Builder
		for range rnd.IntN(60) {
			b.WriteString(pieces[rnd.IntN(len(pieces))])
		}
		in := b.String()
		m := &MIMEBody{estimate: &wbxml.Element{}, stored: int64(rnd.IntN(100))}
		var out bytes.Buffer
		n, err := m.Copy(&out, &chunkReader{b: []byte(in), rnd: rnd})
		want := sanitize(in)
		if err != nil || out.String() != want || n != int64(len(want)) {
			t.Fatalf("case %d: Copy(%q) = %q (%d, %v), want %q", i, in, out.String(), n, err, want)
		}
		if est := fmt.Sprint(max(m.stored, int64(len(in)), int64(len(want)))); m.estimate.Text != est {
			t.Fatalf("case %d: EstimatedDataSize %s, want %s", i, m.estimate.Text, est)
		}
	}
}

// TestCopyErrors checks that a failing read is a SourceError wrapping the
// cause, a failing write is returned as is, and a reader that makes no
// progress is stopped.
func TestCopyErrors(t *testing.T) {
	m := &MIMEBody{estimate: &wbxml.Element{}}
	cause := errors.New("connection reset")
	_, err := m.Copy(io.Discard, iotest.ErrReader(cause))
	var se *SourceError
	if !errors.As(err, &se) || !errors.Is(err, cause) {
		t.Errorf("read error: %v, want a SourceError wrapping the cause", err)
	}
	wfail := errors.New("disk full")
	if _, err := m.Copy(failWriter{wfail}, strings.NewReader("hello")); !errors.Is(err, wfail) {
		t.Errorf("write error: %v", err)
	}
	if _, err := m.Copy(io.Discard, stuckReader{}); !errors.Is(err, io.ErrNoProgress) {
		t.Errorf("stuck reader: %v", err)
	}
	if m.estimate.Text != "" {
		t.Errorf("EstimatedDataSize %q set by a failed Copy", m.estimate.Text)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

// TestUsePart checks that Part takes Data's place at the end of the body.
func TestUsePart(t *testing.T) {
	src := readSource(t, "utf8-qp.eml", nil)
	opts := Options{Version: "16.1", BodyPreferences: []BodyPreference{{Type: BodyMIME, Preview: 100}}}
	it, m, err := BuildStreamed(context.Background(), src, opts)
	if err != nil || m == nil {
		t.Fatalf("BuildStreamed: %v, %v", m, err)
	}
	m.UsePart(1)
	var tags []string
	for _, c := range m.Element().Children {
		tags = append(tags, c.Tag.String())
	}
	if got := strings.Join(tags, " "); !strings.HasSuffix(got, "AirSyncBase:Preview ItemOperations:Part") || slices.Contains(tags, "AirSyncBase:Data") {
		t.Errorf("body children %s, want no Data and Part last", got)
	}
	if it.ApplicationData.Child(wbxml.AirSyncBaseBody) != m.Element() {
		t.Error("the MIMEBody's element is not the item's body")
	}
}
