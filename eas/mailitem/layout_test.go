package mailitem

import (
	"reflect"
	"strings"
	"testing"
)

func leaf(path []int, mediaType string, mods ...func(*Part)) *Part {
	p := &Part{Path: path}
	p.Type, p.Subtype, _ = strings.Cut(mediaType, "/")
	for _, m := range mods {
		m(p)
	}
	return p
}

func multi(path []int, sub string, children ...*Part) *Part {
	return &Part{Path: path, Type: "multipart", Subtype: sub, Children: children}
}

func withID(id string) func(*Part) { return func(p *Part) { p.ID = id } }
func withDisp(d, name string) func(*Part) {
	return func(p *Part) { p.Disposition, p.DispositionParams = d, map[string]string{"filename": name} }
}

// TestLayout checks which parts become the text body, the HTML body and
// the attachments for the structures mailers produce.
func TestLayout(t *testing.T) {
	start := multi(nil, "related",
		leaf([]int{1}, "image/png", withID("<img>")),
		leaf([]int{2}, "text/html", withID("<root>")))
	start.Params = map[string]string{"start": "<root>"}
	tests := []struct {
		name              string
		root              *Part
		plain, html, atts []string
	}{
		{"single html", leaf([]int{1}, "text/html"), nil, []string{"1"}, nil},
		{"pdf only", leaf([]int{1}, "application/pdf"), nil, nil, []string{"1"}},
		{"alternative takes the last of each", multi(nil, "alternative",
			leaf([]int{1}, "text/plain"), leaf([]int{2}, "text/html"), leaf([]int{3}, "text/plain")),
			[]string{"3"}, []string{"2"}, nil},
		{"related start parameter", start, nil, []string{"2"}, []string{"1"}},
		{"mixed: later text parts are attachments", multi(nil, "mixed",
			leaf([]int{1}, "text/plain"), leaf([]int{2}, "image/jpeg"), leaf([]int{3}, "text/plain"),
			leaf([]int{4}, "text/plain", withDisp("attachment", "notes.txt"))),
			[]string{"1"}, nil, []string{"2", "3", "4"}},
		{"attached text first", multi(nil, "mixed",
			leaf([]int{1}, "text/plain", withDisp("attachment", "a.txt")), leaf([]int{2}, "text/html")),
			nil, []string{"2"}, []string{"1"}},
		{"signed", multi(nil, "signed",
			multi([]int{1}, "alternative", leaf([]int{1, 1}, "text/plain"), leaf([]int{1, 2}, "text/html")),
			leaf([]int{2}, "application/pkcs7-signature")),
			[]string{"1.1"}, []string{"1.2"}, []string{"2"}},
		{"forwarded message is an attachment", multi(nil, "mixed",
			leaf([]int{1}, "text/plain"), leaf([]int{2}, "message/rfc822")),
			[]string{"1"}, nil, []string{"2"}},
	}
	paths := func(ps ...*Part) []string {
		var out []string
		for _, p := range ps {
			if p != nil {
				out = append(out, PathString(p.Path))
			}
		}
		return out
	}
	for _, tt := range tests {
		var l layout
		l.collect(tt.root, 0)
		if got := paths(l.plain); !reflect.DeepEqual(got, tt.plain) {
			t.Errorf("%s: plain %q, want %q", tt.name, got, tt.plain)
		}
		if got := paths(l.html); !reflect.DeepEqual(got, tt.html) {
			t.Errorf("%s: html %q, want %q", tt.name, got, tt.html)
		}
		if got := paths(l.atts...); !reflect.DeepEqual(got, tt.atts) {
			t.Errorf("%s: attachments %q, want %q", tt.name, got, tt.atts)
		}
	}
}
