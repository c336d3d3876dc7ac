package wbxml

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// TestTextFrom checks that TextFrom writes the same bytes as Text, for
// texts shorter and longer than the encoder's buffer, read in one piece
// or a byte at a time, with and without NUL bytes.
func TestTextFrom(t *testing.T) {
	long := strings.Repeat("0123456789abcdef", 3*encodeBufSize/16+5)
	for _, tc := range []struct{ name, text string }{
		{"empty", ""},
		{"short", "hello"},
		{"NULs", "a\x00b\x00\x00c\x00"},
		{"longer than the buffer", long},
		{"long with NULs", long[:encodeBufSize-3] + "\x00\x00" + long},
	} {
		for _, slow := range []bool{false, true} {
			var want, got bytes.Buffer
			we := NewEncoder(&want)
			we.Start(ItemOperationsData)
			we.Text(tc.text)
			we.End()
			if err := we.Close(); err != nil {
				t.Fatal(err)
			}
			var r io.Reader = strings.NewReader(tc.text)
			if slow {
				r = iotest.OneByteReader(r)
			}
			ge := NewEncoder(&got)
			ge.Start(ItemOperationsData)
			if err := ge.TextFrom(r); err != nil {
				t.Fatalf("%s: TextFrom: %v", tc.name, err)
			}
			ge.End()
			if err := ge.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("%s (one byte at a time: %v): %d bytes differ from Text's %d", tc.name, slow, got.Len(), want.Len())
			}
			doc, err := Parse(bytes.NewReader(got.Bytes()), DefaultLimits)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if w := strings.ReplaceAll(tc.text, "\x00", ""); doc.Text != w {
				t.Errorf("%s: parsed %d bytes of text, want %d", tc.name, len(doc.Text), len(w))
			}
		}
	}
}

func TestTextFromErrors(t *testing.T) {
	boom := errors.New("boom")
	e := NewEncoder(io.Discard)
	e.Start(ItemOperationsData)
	if err := e.TextFrom(iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Fatalf("TextFrom: %v, want the reader's error", err)
	}
	if err := e.End(); !errors.Is(err, boom) {
		t.Errorf("End after a failed TextFrom: %v, want the sticky error", err)
	}
	e = NewEncoder(io.Discard)
	if err := e.TextFrom(strings.NewReader("x")); !errors.Is(err, ErrUnbalanced) {
		t.Errorf("TextFrom outside an element: %v, want ErrUnbalanced", err)
	}
}
