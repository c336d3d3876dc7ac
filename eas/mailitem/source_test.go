package mailitem

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"reflect"
	"strings"
	"testing"

	"github.com/easgate/easgate/wbxml"
	"github.com/emersion/go-imap/v2"
)

// recorder is a Source that logs what is asked of it, as IMAP FETCH items.
type recorder struct {
	Source
	calls []string
	fail  error
}

func (r *recorder) Structure(ctx context.Context) (*Part, error) {
	r.calls = append(r.calls, "BODYSTRUCTURE")
	return r.Source.Structure(ctx)
}

func (r *recorder) Header(ctx context.Context) ([]byte, error) {
	r.calls = append(r.calls, "BODY[HEADER]")
	return r.Source.Header(ctx)
}

func (r *recorder) Section(ctx context.Context, path []int, maxBytes int64) ([]byte, bool, error) {
	if maxBytes > 0 {
		r.calls = append(r.calls, fmt.Sprintf("BODY[%s]<0.%d>", PathString(path), maxBytes))
	} else {
		r.calls = append(r.calls, fmt.Sprintf("BODY[%s]", PathString(path)))
	}
	if r.fail != nil {
		return nil, false, r.fail
	}
	return r.Source.Section(ctx, path, maxBytes)
}

func (r *recorder) Full(ctx context.Context) (io.ReadCloser, int64, error) {
	r.calls = append(r.calls, "BODY[]")
	return r.Source.Full(ctx)
}

// bigText is about n bytes of UTF-8 text with multi-byte characters and
// line breaks.
func bigText(n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "Zeile %d: Grüße, café — 😀 naïve façade.\r\n", i)
	}
	return b.String()
}

func qp(s string) string {
	var b bytes.Buffer
	w := quotedprintable.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func b64(s string) string {
	enc := base64.StdEncoding.EncodeToString([]byte(s))
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return b.String()
}

// bigAlternative is a multipart/alternative with a quoted-printable plain
// part and a base64 HTML part of about n bytes each.
func bigAlternative(n int) []byte {
	text := bigText(n)
	htmlText := "<html><body><p>" + strings.ReplaceAll(text, "\r\n", "</p>\r\n<p>") + "</p></body></html>"
	return []byte("From: a@example.org\r\nTo: b@example.org\r\nSubject: big\r\n" +
		"Content-Type: multipart/alternative; boundary=\"XX\"\r\n\r\n" +
		"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" + qp(text) +
		"\r\n--XX\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64(htmlText) +
		"--XX--\r\n")
}

// TestFetchesOnlyWhatIsNeeded checks which IMAP FETCH items a conversion
// asks for: partial sections for truncated bodies, the full message only
// for MIME.
func TestFetchesOnlyWhatIsNeeded(t *testing.T) {
	raw := bigAlternative(100_000)
	tests := []struct {
		name  string
		prefs []BodyPreference
		mime  MIMESupport
		want  []string
	}{
		{"html truncated", []BodyPreference{{Type: BodyHTML, TruncationSize: 1000}},
			0, []string{"BODYSTRUCTURE", "BODY[HEADER]", "BODY[2]<0.4024>"}},
		{"plain truncated with preview", []BodyPreference{{Type: BodyPlain, TruncationSize: 500, Preview: 100}},
			0, []string{"BODYSTRUCTURE", "BODY[HEADER]", "BODY[1]<0.2524>"}},
		{"html with preview from plain", []BodyPreference{{Type: BodyHTML, TruncationSize: 2000, Preview: 255}},
			0, []string{"BODYSTRUCTURE", "BODY[HEADER]", "BODY[2]<0.7024>", "BODY[1]<0.13312>"}},
		{"html whole", []BodyPreference{{Type: BodyHTML}},
			0, []string{"BODYSTRUCTURE", "BODY[HEADER]", "BODY[2]"}},
		{"mime", []BodyPreference{{Type: BodyMIME, TruncationSize: 5000}},
			0, []string{"BODYSTRUCTURE", "BODY[HEADER]", "BODY[]"}},
		{"mime always", []BodyPreference{{Type: BodyHTML, TruncationSize: 5000}},
			MIMEAlways, []string{"BODYSTRUCTURE", "BODY[HEADER]", "BODY[]"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{Source: FromBytes(raw, Meta{UID: 1})}
			if _, err := Build(context.Background(), rec, Options{Version: "16.1", BodyPreferences: tt.prefs, MIMESupport: tt.mime}); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rec.calls, tt.want) {
				t.Errorf("fetched %q, want %q", rec.calls, tt.want)
			}
		})
	}
}

// TestPartialEqualsWhole checks that a body built from a partial section
// is exactly the start of the body built from the whole section, for
// each type and transfer encoding, at many truncation sizes.
func TestPartialEqualsWhole(t *testing.T) {
	raw := bigAlternative(60_000)
	ctx := context.Background()
	for _, typ := range []BodyType{BodyPlain, BodyHTML} {
		whole, err := BuildBody(ctx, FromBytes(raw, Meta{}), Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: typ}}})
		if err != nil {
			t.Fatal(err)
		}
		full := whole.ChildText(wbxml.AirSyncBaseData)
		for _, limit := range []int64{1, 2, 3, 7, 100, 1001, 4097, 20000, 59999} {
			rec := &recorder{Source: FromBytes(raw, Meta{})}
			body, err := BuildBody(ctx, rec, Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: typ, TruncationSize: limit}}})
			if err != nil {
				t.Fatal(err)
			}
			got := body.ChildText(wbxml.AirSyncBaseData)
			if want := truncateUTF8(full, int(limit)); got != want {
				t.Fatalf("type %d limit %d: got %d bytes %q..., want %d bytes", typ, limit, len(got), got[max(0, len(got)-20):], len(want))
			}
			if body.ChildText(wbxml.AirSyncBaseTruncated) != "1" {
				t.Errorf("type %d limit %d: not marked truncated", typ, limit)
			}
			est := body.ChildText(wbxml.AirSyncBaseEstimatedDataSize)
			var n int
			fmt.Sscan(est, &n)
			if n <= int(limit) || n < len(full)*8/10 || n > len(full)*12/10 {
				t.Errorf("type %d limit %d: EstimatedDataSize %d, whole body is %d bytes", typ, limit, n, len(full))
			}
			for _, c := range rec.calls {
				if limit > 4097 {
					break // the window covers the whole section
				}
				if !strings.Contains(c, "<0.") && strings.HasPrefix(c, "BODY[") && c != "BODY[HEADER]" {
					t.Errorf("type %d limit %d: fetched a whole section: %q", typ, limit, rec.calls)
				}
			}
		}
	}
}

// TestSourceError checks that a failing Source fails the item with an
// error that wraps the cause.
func TestSourceError(t *testing.T) {
	cause := errors.New("connection reset")
	rec := &recorder{Source: FromBytes(bigAlternative(1000), Meta{}), fail: cause}
	_, err := Build(context.Background(), rec, Options{Version: "14.1", BodyPreferences: prefHTML})
	var se *SourceError
	if !errors.As(err, &se) || !errors.Is(err, cause) || se.Op != "section 2" {
		t.Fatalf("Build error = %v, want a *SourceError for section 2 wrapping the cause", err)
	}
}

// imapSource answers Structure from a go-imap BODYSTRUCTURE, as the IMAP
// backend will, and the rest from the raw message.
type imapSource struct {
	Source
	bs imap.BodyStructure
}

func (s *imapSource) Structure(context.Context) (*Part, error) { return PartFromIMAP(s.bs), nil }

// TestPartFromIMAP converts the BODYSTRUCTURE an IMAP server gives for
// testdata/rfc2231.eml and mixed-attachments.eml and checks that the item
// is the same as from the parsed message.
func TestPartFromIMAP(t *testing.T) {
	mixed := readSource(t, "mixed-attachments.eml", nil)
	size := func(path ...int) uint32 {
		b, _, err := mixed.Section(context.Background(), path, 0)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(len(b))
	}
	octet := func(disp map[string]string, params map[string]string) *imap.BodyStructureSinglePart {
		return &imap.BodyStructureSinglePart{Type: "APPLICATION", Subtype: "OCTET-STREAM", Params: params, Encoding: "BASE64", Size: 4,
			Extended: &imap.BodyStructureSinglePartExt{Disposition: &imap.BodyStructureDisposition{Value: "ATTACHMENT", Params: disp}}}
	}
	text := func(sub string, size uint32) *imap.BodyStructureSinglePart {
		return &imap.BodyStructureSinglePart{Type: "TEXT", Subtype: sub, Params: map[string]string{"charset": "utf-8"}, Encoding: "7BIT", Size: size}
	}
	tests := []struct {
		eml string
		bs  imap.BodyStructure
	}{
		{"rfc2231.eml", &imap.BodyStructureMultiPart{Subtype: "MIXED", Children: []imap.BodyStructure{
			text("PLAIN", 12),
			octet(map[string]string{"filename*": "UTF-8''%E2%82%AC%20Rechnung%20M%C3%A4rz.pdf"}, nil),
			octet(map[string]string{"filename*0*": "ISO-8859-1''%E9t%E9%20", "filename*1": "long name ", "filename*2": "part.txt"}, nil),
			// go-imap has decoded the RFC 2047 word already.
			&imap.BodyStructureSinglePart{Type: "APPLICATION", Subtype: "OCTET-STREAM", Params: map[string]string{"name": "Übersicht.xlsx"}, Encoding: "BASE64", Size: 4},
		}}},
		{"mixed-attachments.eml", &imap.BodyStructureMultiPart{Subtype: "MIXED", Children: []imap.BodyStructure{
			&imap.BodyStructureMultiPart{Subtype: "ALTERNATIVE", Children: []imap.BodyStructure{
				text("PLAIN", 20),
				&imap.BodyStructureMultiPart{Subtype: "RELATED", Children: []imap.BodyStructure{
					text("HTML", 60),
					&imap.BodyStructureSinglePart{Type: "IMAGE", Subtype: "PNG", Params: map[string]string{"name": "chart.png"}, ID: "<chart@example.org>", Encoding: "BASE64", Size: size(1, 2, 2),
						Extended: &imap.BodyStructureSinglePartExt{Disposition: &imap.BodyStructureDisposition{Value: "INLINE", Params: map[string]string{"filename": "chart.png"}}}},
				}},
			}},
			&imap.BodyStructureSinglePart{Type: "APPLICATION", Subtype: "PDF", Params: map[string]string{"name": "report.pdf"}, Encoding: "BASE64", Size: size(2),
				Extended: &imap.BodyStructureSinglePartExt{Disposition: &imap.BodyStructureDisposition{Value: "ATTACHMENT", Params: map[string]string{"filename": "report.pdf"}}}},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.eml, func(t *testing.T) {
			mem := readSource(t, tt.eml, nil)
			opts := Options{Version: "16.1", BodyPreferences: prefPreview, FileRef: testFileRef}
			want, err := Build(context.Background(), mem, opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Build(context.Background(), &imapSource{Source: mem, bs: tt.bs}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := toXML(t, got.ApplicationData), toXML(t, want.ApplicationData); !bytes.Equal(g, w) {
				t.Errorf("from BODYSTRUCTURE:\n%s\nfrom the message:\n%s", g, w)
			}
		})
	}
	if p := PartFromIMAP(text("PLAIN", 3)); !reflect.DeepEqual(p.Path, []int{1}) || p.MediaType() != "text/plain" {
		t.Errorf("single part: path %v type %s, want [1] text/plain", p.Path, p.MediaType())
	}
}

// TestFromBytesStructure checks section paths and that each section is
// the part's body byte for byte, as IMAP BODY[path] returns it.
func TestFromBytesStructure(t *testing.T) {
	src := readSource(t, "mixed-attachments.eml", nil)
	root, _ := src.Structure(context.Background())
	var got []string
	var walk func(p *Part)
	walk = func(p *Part) {
		got = append(got, PathString(p.Path)+" "+p.MediaType())
		for _, c := range p.Children {
			walk(c)
		}
	}
	walk(root)
	want := []string{" multipart/mixed", "1 multipart/alternative", "1.1 text/plain", "1.2 multipart/related",
		"1.2.1 text/html", "1.2.2 image/png", "2 application/pdf"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("structure %q, want %q", got, want)
	}
	data, more, err := src.Section(context.Background(), []int{1, 1}, 0)
	if err != nil || more || string(data) != "See the chart below." {
		t.Errorf("BODY[1.1] = %q, %v, %v", data, more, err)
	}
	data, more, err = src.Section(context.Background(), []int{1, 1}, 3)
	if err != nil || !more || string(data) != "See" {
		t.Errorf("BODY[1.1]<0.3> = %q, %v, %v", data, more, err)
	}
	if _, _, err := src.Section(context.Background(), []int{9}, 0); !errors.Is(err, ErrNoSection) {
		t.Errorf("BODY[9] error = %v, want ErrNoSection", err)
	}
}

// TestSplitMultipart checks the in-place multipart splitter on the edge
// cases of RFC 2046 5.1.1 and on what mailers get wrong.
func TestSplitMultipart(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		parts  []string
		closed bool
	}{
		{"crlf with preamble and epilogue", "pre\r\n--b\r\nA: 1\r\n\r\none\r\n--b\r\n\r\ntwo\r\n--b--\r\nepilogue", []string{"A: 1\r\n\r\none", "\r\ntwo"}, true},
		{"lf only", "--b\nx\n--b\ny\n--b--\n", []string{"x", "y"}, true},
		{"padding after delimiters", "--b \t\r\nx\r\n--b--  \r\n", []string{"x"}, true},
		{"longer line is not a delimiter", "--b\r\nx\r\n--bb\r\ny\r\n--b--", []string{"x\r\n--bb\r\ny"}, true},
		{"boundary inside a line", "--b\r\nsee --b here\r\n--b--", []string{"see --b here"}, true},
		{"no close delimiter", "--b\r\nx\r\n--b\r\ny", []string{"x", "y"}, false},
		{"empty part", "--b\r\n--b\r\nx\r\n--b--", []string{"", "x"}, true},
		{"no delimiter", "just text", nil, false},
		{"close with junk after", "--b\r\nx\r\n--b--junk", []string{"x"}, true},
		{"delimiter at end of body", "--b\r\nx\r\n--b", []string{"x", ""}, false},
	}
	for _, tt := range tests {
		parts, closed := splitMultipart([]byte(tt.body), "b")
		var got []string
		for _, p := range parts {
			got = append(got, string(p))
		}
		if !reflect.DeepEqual(got, tt.parts) || closed != tt.closed {
			t.Errorf("%s: parts %q closed %v, want %q %v", tt.name, got, closed, tt.parts, tt.closed)
		}
	}
}
