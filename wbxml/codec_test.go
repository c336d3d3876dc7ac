package wbxml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// contactsExample is the MS-ASWBXML Contacts Sync sample (section 3.1.1).
var contactsExample = []byte("\x03\x01\x6A\x00\x45\x5C\x4F\x50\x03Contacts\x00\x01\x4B\x03" + "2\x00\x01\x52\x03" + "2\x00\x01\x01\x01\x01")

var hdr = "\x03\x01\x6A\x00"

var decodeErrorCases = []struct {
	name string
	in   []byte
	want error
}{
	{"empty", nil, ErrTruncated},
	{"truncated header", []byte("\x03\x01\x6A"), ErrTruncated},
	{"bad version", []byte("\x09\x01\x6A\x00\x05"), ErrBadHeader},
	{"bad charset", []byte("\x03\x01\x04\x00\x05"), ErrBadHeader},
	{"public id in string table", []byte("\x03\x00\x00\x6A\x00\x05"), ErrBadHeader},
	{"string table", []byte("\x03\x01\x6A\x02ab\x05"), ErrStringTable},
	{"no body", []byte(hdr), ErrTruncated},
	{"truncated in tag", []byte(hdr + "\x45"), ErrTruncated},
	{"truncated in string", []byte(hdr + "\x45\x03abc"), ErrTruncated},
	{"truncated in switch page", []byte(hdr + "\x00"), ErrTruncated},
	{"truncated in opaque", []byte(hdr + "\x45\xC3\x05ab"), ErrTruncated},
	{"opaque length beyond input", []byte(hdr + "\x45\xC3\x8F\xFF\xFF\x7F\x00ab\x01"), ErrOpaqueTooLong},
	{"opaque length beyond limit", []byte(hdr + "\x45\xC3\x8F\xFF\xFF\xFF\x7F"), ErrOpaqueTooLong},
	{"unknown page 26", []byte(hdr + "\x00\x1A\x05"), ErrUnknownPage},
	{"unknown token on page", []byte(hdr + "\x45\x7F\x01\x01"), ErrUnknownTag},
	{"unknown token on Move", []byte(hdr + "\x00\x05\x3F"), ErrUnknownTag},
	{"mb_u_int32 six bytes", []byte(hdr + "\x45\xC3\x80\x80\x80\x80\x80\x01"), ErrIntOverflow},
	{"mb_u_int32 over 32 bits", []byte(hdr + "\x45\xC3\x90\x80\x80\x80\x00\x01"), ErrIntOverflow},
	{"header mb_u_int32 overflow", []byte("\x03\xFF\xFF\xFF\xFF\xFF\x01"), ErrIntOverflow},
	{"attributes", []byte(hdr + "\xC5\x01"), ErrAttributes},
	{"attributes without content", []byte(hdr + "\x85"), ErrAttributes},
	{"ENTITY", []byte(hdr + "\x45\x02\x41\x01"), ErrUnsupportedToken},
	{"LITERAL", []byte(hdr + "\x04\x00"), ErrUnsupportedToken},
	{"EXT_I_0", []byte(hdr + "\x45\x40ab\x00\x01"), ErrUnsupportedToken},
	{"PI", []byte(hdr + "\x43"), ErrUnsupportedToken},
	{"STR_T", []byte(hdr + "\x45\x83\x00\x01"), ErrUnsupportedToken},
	{"EXT_0", []byte(hdr + "\x45\xC0\x01"), ErrUnsupportedToken},
	{"END at top", []byte(hdr + "\x01"), ErrUnbalanced},
	{"text at top", []byte(hdr + "\x03a\x00"), ErrUnbalanced},
	{"second root", []byte(hdr + "\x05\x05"), ErrUnbalanced},
	{"unclosed root", []byte(hdr + "\x45\x4B"), ErrTruncated},
	{"mixed text and opaque", []byte(hdr + "\x45\x03a\x00\xC3\x01b\x01"), ErrMixedContent},
	{"text then child", []byte(hdr + "\x45\x03a\x00\x4B\x01\x01"), ErrMixedContent},
	{"child then text", []byte(hdr + "\x45\x0B\x03a\x00\x01"), ErrMixedContent},
	{"opaque then child", []byte(hdr + "\x45\xC3\x01a\x0B\x01"), ErrMixedContent},
	{"too deep", []byte(hdr + strings.Repeat("\x45", 65)), ErrTooDeep},
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range decodeErrorCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{bytes.NewReader(tc.in), io.MultiReader(bytes.NewReader(tc.in))} {
				_, err := Parse(r, DefaultLimits)
				if !errors.Is(err, tc.want) {
					t.Fatalf("Parse(%x) = %v, want %v", tc.in, err, tc.want)
				}
				var se *SyntaxError
				if !errors.As(err, &se) {
					t.Fatalf("error %T is not a *SyntaxError", err)
				}
			}
		})
	}
}

func TestDecodeLimits(t *testing.T) {
	long := []byte(hdr + "\x45\x4B\x03" + strings.Repeat("x", 100) + "\x00\x01\x01")
	for _, tc := range []struct {
		name string
		lim  Limits
		want error
	}{
		{"document size", Limits{MaxBytes: 50}, ErrTooLarge},
		{"string length", Limits{MaxStringLen: 99}, ErrTooLarge},
		{"depth", Limits{MaxDepth: 1}, ErrTooDeep},
	} {
		if _, err := Parse(bytes.NewReader(long), tc.lim); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := Parse(bytes.NewReader(long), Limits{MaxBytes: int64(len(long)), MaxStringLen: 100, MaxDepth: 2}); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}

func TestDecodeContactsExample(t *testing.T) {
	d := NewDecoder(bytes.NewReader(contactsExample), DefaultLimits)
	var got []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch tok.Kind {
		case StartElement:
			got = append(got, "<"+tok.Tag.String())
		case EndElement:
			got = append(got, ">")
		case Text:
			got = append(got, fmt.Sprintf("%q", tok.Text))
		}
	}
	want := `<AirSync:Sync <AirSync:Collections <AirSync:Collection <AirSync:Class "Contacts" > <AirSync:SyncKey "2" > <AirSync:CollectionId "2" > > > >`
	if s := strings.Join(got, " "); s != want {
		t.Fatalf("got  %s\nwant %s", s, want)
	}
}

func TestEncodeExactBytes(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    *Element
		want string
	}{
		{"contacts example", E(AirSyncSync, E(AirSyncCollections, E(AirSyncCollection,
			T(AirSyncClass, "Contacts"), T(AirSyncSyncKey, "2"), T(AirSyncCollectionId, "2")))),
			string(contactsExample)},
		{"empty root", E(PingPing), hdr + "\x00\x0D\x05"},
		{"page switch only on change", E(AirSyncApplicationData, T(EmailSubject, "a"), T(EmailTo, "b"),
			E(AirSyncBaseBody, T(AirSyncBaseType, "2")), E(AirSyncMoreAvailable)),
			hdr + "\x5D\x00\x02\x54\x03a\x00\x01\x56\x03b\x00\x01\x00\x11\x4A\x46\x03" + "2\x00\x01\x01\x00\x00\x14\x01"},
		{"opaque", E(ComposeMailSendMail, O(ComposeMailMime, []byte("hi\x00"))), hdr + "\x00\x15\x45\x50\xC3\x03hi\x00\x01\x01"},
		{"long opaque length", E(ComposeMailSendMail, O(ComposeMailMime, bytes.Repeat([]byte{'a'}, 200))),
			hdr + "\x00\x15\x45\x50\xC3\x81\x48" + strings.Repeat("a", 200) + "\x01\x01"},
		{"NUL dropped from text", E(EmailSubject, T(EmailTo, "a\x00b")), hdr + "\x00\x02\x54\x56\x03ab\x00\x01\x01"},
	} {
		got, err := Marshal(tc.e)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if string(got) != tc.want {
			t.Errorf("%s:\ngot  % x\nwant % x", tc.name, got, tc.want)
		}
	}
}

func TestEncoderStreaming(t *testing.T) {
	var buf bytes.Buffer
	enc := NewEncoder(&buf)
	big := bytes.Repeat([]byte("0123456789"), 10000)
	steps := []error{
		enc.Start(ComposeMailSendMail),
		enc.TextElement(ComposeMailClientId, "c1"),
		enc.Empty(ComposeMailSaveInSentItems),
		enc.Start(ComposeMailMime),
		enc.OpaqueFrom(bytes.NewReader(big), int64(len(big))),
		enc.End(),
		enc.End(),
		enc.Close(),
	}
	for i, err := range steps {
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	e, err := Parse(&buf, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if e.ChildText(ComposeMailClientId) != "c1" || !e.Has(ComposeMailSaveInSentItems) || !bytes.Equal(e.Child(ComposeMailMime).Opaque, big) {
		t.Fatalf("tree does not match what was encoded")
	}
}

func TestEncoderMisuse(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(*Encoder) error
		want error
	}{
		{"End without Start", func(e *Encoder) error { return e.End() }, ErrUnbalanced},
		{"Close with open element", func(e *Encoder) error { e.Start(AirSyncSync); return e.Close() }, ErrUnbalanced},
		{"Close without root", func(e *Encoder) error { return e.Close() }, ErrUnbalanced},
		{"second root", func(e *Encoder) error { e.Empty(AirSyncSync); return e.Empty(AirSyncSync) }, ErrUnbalanced},
		{"text outside element", func(e *Encoder) error { return e.Text("x") }, ErrUnbalanced},
		{"unknown tag", func(e *Encoder) error { return e.Start(MakeTag(0, 0x3F)) }, ErrUnknownTag},
		{"OpaqueFrom short reader", func(e *Encoder) error {
			e.Start(ComposeMailMime)
			return e.OpaqueFrom(strings.NewReader("abc"), 10)
		}, io.ErrUnexpectedEOF},
	} {
		if err := tc.run(NewEncoder(io.Discard)); !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestOpaqueStreamingAndSkip(t *testing.T) {
	doc := []byte(hdr + "\x00\x15\x45\x50\xC3\x05hello\x01\x51\xC3\x02hi\x01\x01")
	d := NewDecoder(io.MultiReader(bytes.NewReader(doc)), DefaultLimits)
	var opaques []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if tok.Kind == Opaque && len(opaques) == 0 {
			b := make([]byte, 2) // read part; the rest is skipped by Token
			io.ReadFull(d.Opaque(), b)
			opaques = append(opaques, string(b))
		} else if tok.Kind == Opaque {
			b, _ := io.ReadAll(d.Opaque())
			opaques = append(opaques, string(b))
		}
	}
	if strings.Join(opaques, ",") != "he,hi" {
		t.Fatalf("opaques %q", opaques)
	}
}

func TestTagNames(t *testing.T) {
	for _, tc := range []struct {
		tag       Tag
		ns, name  string
		str       string
		page, tok uint8
	}{
		{AirSyncSyncKey, "AirSync", "SyncKey", "AirSync:SyncKey", 0, 0x0B},
		{FindFind, "Find", "Find", "Find:Find", 25, 0x05},
		{Email2ConversationId, "Email2", "ConversationId", "Email2:ConversationId", 22, 0x09},
	} {
		if tc.tag.Namespace() != tc.ns || tc.tag.Name() != tc.name || tc.tag.String() != tc.str || tc.tag.Page() != tc.page || tc.tag.Token() != tc.tok {
			t.Errorf("%v: got %s %s %d %x", tc.tag, tc.tag.Namespace(), tc.tag.Name(), tc.tag.Page(), tc.tag.Token())
		}
		if got, ok := TagByName(tc.ns+":", tc.name); !ok || got != tc.tag {
			t.Errorf("TagByName(%s, %s) = %v %v", tc.ns, tc.name, got, ok)
		}
	}
	if s := MakeTag(0, 0x3F).String(); s != "0x00:0x3f" {
		t.Errorf("unknown tag prints %q", s)
	}
	if _, ok := TagByName("AirSync", "Nope"); ok {
		t.Error("TagByName found an unknown name")
	}
}

func TestXMLForm(t *testing.T) {
	e := E(AirSyncSync,
		T(AirSyncSyncKey, "a < b & c\r\nline2\t "),
		E(AirSyncApplicationData,
			O(Email2ConversationId, []byte{0xFF, 0x00, 0x01}),
			O(EmailSubject, []byte("opaque text")),
			O(EmailTo, []byte{0xFF}),
			O(EmailCc, []byte{}),
			T(EmailFrom, "bad \x01 char"),
			T(Email2ConversationIndex, "as string")),
		E(ComposeMailSendMail, O(ComposeMailMime, []byte("Subject: x\r\n\r\nbody\r\n"))))
	var buf bytes.Buffer
	if err := ToXML(&buf, e); err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0" encoding="UTF-8"?>
<Sync xmlns="AirSync:">
  <SyncKey>a &lt; b &amp; c&#xD;
line2	 </SyncKey>
  <ApplicationData>
    <ConversationId xmlns="Email2:">/wAB</ConversationId>
    <Subject xmlns="Email:" enc="opaque">opaque text</Subject>
    <To xmlns="Email:" enc="opaque-base64">/w==</To>
    <Cc xmlns="Email:" enc="opaque"/>
    <From xmlns="Email:" enc="str-base64">YmFkIAEgY2hhcg==</From>
    <ConversationIndex xmlns="Email2:" enc="str">as string</ConversationIndex>
  </ApplicationData>
  <SendMail xmlns="ComposeMail:">
    <Mime>Subject: x&#xD;
&#xD;
body&#xD;
</Mime>
  </SendMail>
</Sync>
`
	if buf.String() != want {
		t.Fatalf("got\n%s\nwant\n%s", buf.String(), want)
	}
	back, err := FromXML(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if d := diffTree(e, back, ""); d != "" {
		t.Fatal(d)
	}
}

func TestFromXMLErrors(t *testing.T) {
	for _, in := range []string{
		`<Sync/>`,
		`<Sync xmlns="AirSync:"><Nope/></Sync>`,
		`<Sync xmlns="AirSync:" a="1"/>`,
		`<Sync xmlns="AirSync:"><SyncKey enc="x">1</SyncKey></Sync>`,
		`<Sync xmlns="AirSync:"><ConversationId xmlns="Email2:">!!</ConversationId></Sync>`,
		`<Sync xmlns="AirSync:">`,
		`<Sync xmlns="Nowhere:"/>`,
	} {
		if _, err := FromXML(strings.NewReader(in)); err == nil {
			t.Errorf("FromXML(%s) succeeded", in)
		}
	}
}

// diffTree describes the first difference between two trees, or returns
// "" when they are equal.
func diffTree(a, b *Element, path string) string {
	if a == nil || b == nil {
		if a == b {
			return ""
		}
		return path + ": one tree is nil"
	}
	path += "/" + a.Tag.String()
	switch {
	case a.Tag != b.Tag:
		return fmt.Sprintf("%s: tag %v vs %v", path, a.Tag, b.Tag)
	case a.IsOpaque != b.IsOpaque:
		return fmt.Sprintf("%s: opaque %v vs %v", path, a.IsOpaque, b.IsOpaque)
	case a.Text != b.Text:
		return fmt.Sprintf("%s: text %q vs %q", path, a.Text, b.Text)
	case !bytes.Equal(a.Opaque, b.Opaque):
		return fmt.Sprintf("%s: opaque data differs (%d vs %d bytes)", path, len(a.Opaque), len(b.Opaque))
	case len(a.Children) != len(b.Children):
		return fmt.Sprintf("%s: %d vs %d children", path, len(a.Children), len(b.Children))
	}
	for i := range a.Children {
		if d := diffTree(a.Children[i], b.Children[i], path); d != "" {
			return d
		}
	}
	return ""
}
