package mailitem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// planSource is a Source that checks every read against a plan: reads the
// plan covers are served, the others are recorded (and served too, so the
// item can be compared with an unchecked build).
type planSource struct {
	Source
	plan    Plan
	reads   []string // every read, in order
	outside []string // the reads the plan does not cover
	last    map[string]int64
	grown   bool // every outside read was a ×4 growth of the previous read of its part
}

func newPlanSource(t *testing.T, src Source, opts Options) *planSource {
	t.Helper()
	root, err := src.Structure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &planSource{Source: src, plan: PlanReads(root, opts), last: map[string]int64{}, grown: true}
}

func (s *planSource) Header(ctx context.Context) ([]byte, error) {
	s.reads = append(s.reads, "header")
	if !s.plan.Header {
		s.outside = append(s.outside, "header")
	}
	return s.Source.Header(ctx)
}

func (s *planSource) Section(ctx context.Context, path []int, maxBytes int64) ([]byte, bool, error) {
	read := fmt.Sprintf("section %s<%d>", PathString(path), maxBytes)
	s.reads = append(s.reads, read)
	if !s.plan.CoversSection(path, maxBytes) {
		s.outside = append(s.outside, read)
		prev, ok := s.last[PathString(path)]
		if !ok || prev == 0 || maxBytes != 0 && maxBytes != prev*4 {
			s.grown = false
		}
	}
	s.last[PathString(path)] = maxBytes
	return s.Source.Section(ctx, path, maxBytes)
}

func (s *planSource) Full(ctx context.Context) (io.ReadCloser, int64, error) {
	s.reads = append(s.reads, "full")
	rc, size, err := s.Source.Full(ctx)
	if err != nil {
		return nil, 0, err
	}
	if !s.plan.Full {
		s.outside = append(s.outside, "full")
		return rc, size, nil
	}
	if s.plan.FullMax > 0 {
		// Reading past the planned bytes fails the build.
		return &boundedReader{ReadCloser: rc, left: s.plan.FullMax}, size, nil
	}
	return rc, size, nil
}

// boundedReader fails when more than left bytes are read from it.
type boundedReader struct {
	io.ReadCloser
	left int64
}

func (r *boundedReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if r.left -= int64(n); r.left < 0 {
		return n, fmt.Errorf("read past the planned bytes")
	}
	return n, err
}

// TestPlanCoversGolden builds every golden case through a Source that
// records reads outside PlanReads: there must be none, and the item must
// be the one an unchecked Source gives.
func TestPlanCoversGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			ps := newPlanSource(t, readSource(t, tc.eml, tc.flags), tc.opts)
			item, err := Build(context.Background(), ps, tc.opts)
			if err != nil {
				t.Fatalf("Build: %v (reads %q, plan %+v)", err, ps.reads, ps.plan)
			}
			if len(ps.outside) > 0 {
				t.Errorf("reads outside the plan %+v: %q (all reads %q)", ps.plan, ps.outside, ps.reads)
			}
			want, err := Build(context.Background(), readSource(t, tc.eml, tc.flags), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := toXML(t, item.ApplicationData), toXML(t, want.ApplicationData); !bytes.Equal(got, want) {
				t.Errorf("item through the plan source differs:\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// TestPlanCoversOptions builds every test message with many option sets
// through the checking Source: no read may fall outside the plan.
func TestPlanCoversOptions(t *testing.T) {
	emls, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(emls) == 0 {
		t.Fatalf("no test messages: %v", err)
	}
	var prefs []BodyPreference
	for _, typ := range []BodyType{BodyPlain, BodyHTML, BodyRTF, BodyMIME} {
		for _, trunc := range []int64{0, 1, 10, 200, 500, 5120, 51200} {
			prefs = append(prefs,
				BodyPreference{Type: typ, TruncationSize: trunc},
				BodyPreference{Type: typ, TruncationSize: trunc, Preview: 255},
				BodyPreference{Type: typ, TruncationSize: trunc, AllOrNone: true, Preview: 100})
		}
	}
	for _, eml := range emls {
		for _, pref := range prefs {
			for _, mime := range []MIMESupport{MIMENever, MIMESMIMEOnly, MIMEAlways} {
				for _, ver := range []string{"12.1", "14.1"} {
					opts := Options{Version: ver, BodyPreferences: []BodyPreference{pref}, MIMESupport: mime}
					ps := newPlanSource(t, readSource(t, filepath.Base(eml), nil), opts)
					name := fmt.Sprintf("%s %+v mime=%d %s", filepath.Base(eml), pref, mime, ver)
					if _, err := Build(context.Background(), ps, opts); err != nil {
						t.Fatalf("%s: Build: %v (reads %q)", name, err, ps.reads)
					}
					if len(ps.outside) > 0 {
						t.Errorf("%s: reads outside the plan %+v: %q (all reads %q)", name, ps.plan, ps.outside, ps.reads)
					}
				}
			}
		}
	}
}

// TestPlanGrowth shows the one read a plan cannot foresee: an HTML body
// whose first read holds no text at all (a long style sheet) is read
// again four times larger (here: whole, as that covers the part).
func TestPlanGrowth(t *testing.T) {
	style := "<style>" + strings.Repeat(".c{color:red}", 2000) + "</style>"
	raw := "From: a@example.org\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><head>" + style + "</head><body>" +
		strings.Repeat("Hello world. ", 500) + "</body></html>\r\n"
	opts := Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 100}}}
	ps := newPlanSource(t, FromBytes([]byte(raw), Meta{UID: 1}), opts)
	item, err := Build(context.Background(), ps, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"header", "section 1<8992>", "section 1<0>"}; !slices.Equal(ps.reads, want) {
		t.Fatalf("reads %q, want %q (plan %+v)", ps.reads, want, ps.plan)
	}
	if !slices.Equal(ps.outside, []string{"section 1<0>"}) || !ps.grown {
		t.Errorf("reads outside the plan %q, want only the growth", ps.outside)
	}
	if !bytes.Contains(toXML(t, item.ApplicationData), []byte("Hello world.")) {
		t.Errorf("the body text is missing")
	}
}

func TestPlanReads(t *testing.T) {
	alt := &Part{Type: "multipart", Subtype: "alternative", Children: []*Part{
		{Path: []int{1}, Type: "text", Subtype: "plain", Size: 40000},
		{Path: []int{2}, Type: "text", Subtype: "html", Size: 90000},
	}}
	tests := []struct {
		name string
		root *Part
		opts Options
		want Plan
	}{
		{"plain whole", nil, Options{}, Plan{Header: true, Sections: []PlannedSection{{Path: []int{1}}}}},
		{"plain cut", alt, Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 500}}},
			Plan{Header: true, Sections: []PlannedSection{{Path: []int{1}, MaxBytes: 2524}}}},
		{"html cut with preview", alt, Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyHTML, TruncationSize: 1000, Preview: 100}}},
			Plan{Header: true, Sections: []PlannedSection{{Path: []int{2}, MaxBytes: 4024}, {Path: []int{1}, MaxBytes: 13312}}}},
		{"preview not before 14.0", alt, Options{Version: "12.1", BodyPreferences: []BodyPreference{{Type: BodyHTML, TruncationSize: 1000, Preview: 100}}},
			Plan{Header: true, Sections: []PlannedSection{{Path: []int{2}, MaxBytes: 4024}}}},
		{"part smaller than the read", alt, Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 20000}}},
			Plan{Header: true, Sections: []PlannedSection{{Path: []int{1}}}}},
		{"mime cut", alt, Options{Version: "14.1", MIMESupport: MIMEAlways, BodyPreferences: []BodyPreference{{Type: BodyMIME, TruncationSize: 100}}},
			Plan{Header: true, Full: true, FullMax: 164}},
	}
	for _, tt := range tests {
		got := PlanReads(tt.root, tt.opts)
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) {
			t.Errorf("%s: PlanReads = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// TestBodyLimit: the bound is the TruncationSize of the preference an item
// is built with, for plain and S/MIME messages alike; 0 when a whole body
// may be sent.
func TestBodyLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want int64
	}{
		{"no preference: whole plain body", Options{}, 0},
		{"plain cut", Options{BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 500}}}, 500},
		{"first usable preference counts", Options{BodyPreferences: []BodyPreference{{Type: 3, TruncationSize: 9}, {Type: BodyHTML, TruncationSize: 2048}, {Type: BodyPlain}}}, 2048},
		{"html whole", Options{BodyPreferences: []BodyPreference{{Type: BodyHTML}}}, 0},
		{"MIME always, cut", Options{MIMESupport: MIMEAlways, BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 500}, {Type: BodyMIME, TruncationSize: 100000}}}, 100000},
		{"MIME always without a MIME preference: whole", Options{MIMESupport: MIMEAlways, BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 500}}}, 0},
		{"MIME always, cut by MIMETruncation", Options{MIMESupport: MIMEAlways, MIMETruncation: BodyPreference{Type: BodyMIME, TruncationSize: 4096}}, 4096},
		{"S/MIME only: the larger of both", Options{MIMESupport: MIMESMIMEOnly, BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 500}, {Type: BodyMIME, TruncationSize: 200000}}}, 200000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.opts.BodyLimit(); got != tc.want {
				t.Errorf("BodyLimit = %d, want %d", got, tc.want)
			}
		})
	}
}
