package wbxml

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// fuzzLimits keep memory bounded whatever the input declares.
var fuzzLimits = Limits{MaxDepth: 32, MaxBytes: 1 << 20, MaxStringLen: 64 << 10}

func addSeeds(f *testing.F) {
	files, _ := filepath.Glob("../testdata/wbxml/*.wbxml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, tc := range decodeErrorCases {
		f.Add(tc.in)
	}
	f.Add(contactsExample)
}

// FuzzDecode: no input panics, every error is typed, and the streaming
// decoder never consumes more than the limits allow.
func FuzzDecode(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		d := NewDecoder(bytes.NewReader(in), fuzzLimits)
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("untyped error %T %v", err, err)
				}
				break
			}
			if tok.Kind == Opaque {
				if _, err := io.Copy(io.Discard, d.Opaque()); err != nil {
					t.Fatalf("opaque: %v", err)
				}
			}
			if d.Offset() > fuzzLimits.MaxBytes || d.Depth() > fuzzLimits.MaxDepth {
				t.Fatalf("limits exceeded: offset %d depth %d", d.Offset(), d.Depth())
			}
		}
		// Unknown input size: lengths are then only bounded by the limits.
		_, _ = Parse(io.MultiReader(bytes.NewReader(in)), fuzzLimits)
	})
}

// FuzzRoundTrip: whatever decodes re-encodes to a document that decodes
// to the same tree, and the XML form carries the tree exactly.
func FuzzRoundTrip(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := Parse(bytes.NewReader(in), fuzzLimits)
		if err != nil {
			return
		}
		enc, err := Marshal(a)
		if err != nil {
			t.Fatalf("Marshal of a parsed tree: %v", err)
		}
		b, err := Parse(bytes.NewReader(enc), fuzzLimits)
		if err != nil {
			t.Fatalf("Parse of re-encoded tree: %v", err)
		}
		if d := diffTree(a, b, ""); d != "" {
			t.Fatalf("WBXML round trip: %s", d)
		}
		var x bytes.Buffer
		if err := ToXML(&x, a); err != nil {
			t.Fatalf("ToXML: %v", err)
		}
		c, err := FromXML(&x)
		if err != nil {
			t.Fatalf("FromXML of ToXML output: %v\n%s", err, x.String())
		}
		enc2, err := Marshal(c)
		if err != nil {
			t.Fatalf("Marshal after XML: %v", err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("XML round trip changed the encoding:\n%x\n%x", enc, enc2)
		}
	})
}
