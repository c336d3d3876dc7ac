package wbxml

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFromXMLDepth checks that the XML form is held to the same nesting
// limit as WBXML, so a hostile XML file cannot exhaust the stack of
// Marshal or ToXML.
func TestFromXMLDepth(t *testing.T) {
	deep := func(n int) string {
		return `<Sync xmlns="AirSync:">` + strings.Repeat("<Collection>", n-1) +
			strings.Repeat("</Collection>", n-1) + `</Sync>`
	}
	if _, err := FromXML(strings.NewReader(deep(DefaultLimits.MaxDepth))); err != nil {
		t.Errorf("depth %d refused: %v", DefaultLimits.MaxDepth, err)
	}
	if _, err := FromXML(strings.NewReader(deep(DefaultLimits.MaxDepth + 1))); !errors.Is(err, ErrTooDeep) {
		t.Errorf("depth %d: err = %v, want ErrTooDeep", DefaultLimits.MaxDepth+1, err)
	}
}

// TestEncodeMixedContent checks that a hand-built element with content and
// children is refused instead of losing the children.
func TestEncodeMixedContent(t *testing.T) {
	for _, e := range []*Element{
		{Tag: AirSyncSync, Text: "x", Children: []*Element{T(AirSyncSyncKey, "1")}},
		{Tag: AirSyncSync, IsOpaque: true, Opaque: []byte{1}, Children: []*Element{T(AirSyncSyncKey, "1")}},
	} {
		if _, err := Marshal(e); !errors.Is(err, ErrMixedContent) {
			t.Errorf("Marshal(mixed) err = %v, want ErrMixedContent", err)
		}
	}
}

// FuzzFromXML feeds arbitrary text to the XML form's reader: it must never
// panic, and whatever it accepts must encode and come back as the same
// tree.
func FuzzFromXML(f *testing.F) {
	files, _ := filepath.Glob("../testdata/wbxml/*.xml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`<Sync xmlns="AirSync:"><SyncKey enc="str-base64">AA==</SyncKey></Sync>`))
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := FromXML(bytes.NewReader(in))
		if err != nil {
			return
		}
		enc, err := Marshal(a)
		if err != nil {
			return // e.g. a tag the encoder refuses; never a panic
		}
		b, err := Parse(bytes.NewReader(enc), DefaultLimits)
		if err != nil {
			t.Fatalf("Parse(Marshal(FromXML(x))): %v", err)
		}
		stripNUL(a) // the encoder drops NUL from STR_I (EAS strings cannot hold it)
		if d := diffTree(a, b, ""); d != "" {
			t.Fatalf("tree changed through WBXML: %s", d)
		}
	})
}

// stripNUL removes NUL characters from the text of e and its descendants.
func stripNUL(e *Element) {
	e.Text = strings.ReplaceAll(e.Text, "\x00", "")
	for _, c := range e.Children {
		stripNUL(c)
	}
}
