package mailitem

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/wbxml"
)

// variedOptions picks a set of Options from the bits of sel: the body
// type (Plain, HTML, MIME, RTF), truncation sizes from 0 to large,
// AllOrNone, Preview, the protocol version, MIMESupport and
// MIMETruncation, Drafts, a second preference or none, a FileRef.
func variedOptions(sel uint32) Options {
	types := [...]BodyType{BodyPlain, BodyHTML, BodyMIME, BodyRTF}
	truncs := [...]int64{0, 1, 7, 64, 1024, 200000, 2, 300}
	versions := [...]string{"12.1", "14.0", "14.1", "16.0", "16.1", "16.1", "14.1", "2.5"}
	previews := [...]int{0, 1, 40, 255}
	p := BodyPreference{Type: types[sel&3], TruncationSize: truncs[sel>>2&7], AllOrNone: sel>>5&1 == 1, Preview: previews[sel>>6&3]}
	o := Options{
		Version:        versions[sel>>8&7],
		MIMESupport:    MIMESupport(sel >> 11 & 3 % 3),
		Drafts:         sel>>13&1 == 1,
		MIMETruncation: BodyPreference{TruncationSize: truncs[sel>>14&7], AllOrNone: sel>>17&1 == 1},
	}
	switch sel >> 18 & 3 {
	case 0:
		o.BodyPreferences = []BodyPreference{p}
	case 1:
		o.BodyPreferences = []BodyPreference{p, {Type: BodyPlain, TruncationSize: truncs[sel>>20&7], Preview: previews[sel>>23&3]}}
	case 2: // none: the whole body as plain text
	case 3:
		o.BodyPreferences = []BodyPreference{{Type: BodyRTF}, p}
	}
	if sel>>25&1 == 1 {
		o.FileRef = testFileRef
	}
	return o
}

// variedFlags are the flag sets variedMeta picks from.
var variedFlags = [][]string{
	nil, {`\Seen`}, {`\Flagged`, `\Answered`, "Work", "work", "$Junk", "Family"}, {`\Draft`, "$Forwarded", "\x00odd"},
	{"a", "b", "c", "d", "e", "f", `\Flagged`}, {""},
}

// variedMeta picks the Meta of a message from the bits of sel: a flag
// set, and an INTERNALDATE or none (then the Date field decides).
func variedMeta(sel uint8) Meta {
	m := Meta{UID: 9, Flags: variedFlags[int(sel&0x7f)%len(variedFlags)]}
	if sel&0x80 != 0 {
		m.InternalDate = time.Date(2025, 3, 4, 5, 6, 7, 8e6, time.UTC)
	}
	return m
}

// usedPreference is the options with only the body preference the item
// was made with, for checkItem to check its truncation against.
func usedPreference(opts Options, typ BodyType) Options {
	for _, bp := range opts.BodyPreferences {
		if bp.Type == typ {
			return Options{BodyPreferences: []BodyPreference{bp}}
		}
	}
	if typ == BodyMIME {
		return Options{BodyPreferences: []BodyPreference{opts.MIMETruncation}}
	}
	return Options{}
}

// dumpElement writes the tree under e, every field of every element.
func dumpElement(b *strings.Builder, e *wbxml.Element, depth int) {
	fmt.Fprintf(b, "%s%v opaque=%v %q %x\n", strings.Repeat(" ", depth), e.Tag, e.IsOpaque, e.Text, e.Opaque)
	for _, c := range e.Children {
		dumpElement(b, c, depth+1)
	}
}

func dumpTree(e *wbxml.Element) string {
	var b strings.Builder
	dumpElement(&b, e, 0)
	return b.String()
}

// FuzzBuildOptions builds any message with any options, checking that
// nothing panics, that the elements were counted exactly (a count too
// small would have made Build allocate apart, one too large left
// elements unused), and that the item is valid and reads back from its
// WBXML as it was built.
func FuzzBuildOptions(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.eml"))
	for i, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, sel := range []uint32{0, 0x1234567, 0x2fffffff, uint32(i) * 0x9e3779b9} {
			f.Add(raw, sel, uint8(i)|uint8(sel)&0x80)
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, sel uint32, msel uint8) {
		opts, meta := variedOptions(sel), variedMeta(msel)
		b := newBuilder(context.Background(), FromBytes(bytes.Clone(raw), meta), opts)
		if err := b.init(); err != nil {
			t.Fatal(err)
		}
		item, err := b.item()
		if err != nil {
			t.Fatal(err)
		}
		checkReserved(t, "item", &b.el, item.ApplicationData)
		enc := checkItem(t, item, usedPreference(opts, item.BodyType))
		back, err := wbxml.Parse(bytes.NewReader(enc), wbxml.DefaultLimits)
		if err != nil {
			t.Fatalf("the item's WBXML does not parse: %v", err)
		}
		ad := back.Child(wbxml.AirSyncCollections).Child(wbxml.AirSyncCollection).Child(wbxml.AirSyncCommands).
			Child(wbxml.AirSyncAdd).Child(wbxml.AirSyncApplicationData)
		if ad == nil {
			t.Fatal("no ApplicationData in the parsed WBXML")
		}
		if got, want := dumpTree(ad), dumpTree(item.ApplicationData); got != want {
			t.Fatalf("the item reads back from WBXML as\n%s\nbuilt as\n%s", got, want)
		}

		b = newBuilder(context.Background(), FromBytes(bytes.Clone(raw), meta), opts)
		if err := b.init(); err != nil {
			t.Fatal(err)
		}
		body, err := b.bodyOnly()
		if err != nil {
			t.Fatal(err)
		}
		checkReserved(t, "body", &b.el, body)

		var el elements
		checkReserved(t, "change", &el, changeData(&el, meta.Flags, opts))
	})
}
