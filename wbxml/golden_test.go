package wbxml_test

import (
	"bytes"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/easgate/easgate/wbxml"
	"github.com/easgate/easgate/wbxml/wbxmltest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/wbxml: each X.xml in the codec's canonical XML form and X.wbxml as the codec encodes it")

// goldenDir holds one XML document per golden case and its WBXML encoding.
const goldenDir = "../testdata/wbxml"

// goldenDocs lists every golden document, so that a lost file fails the
// test instead of silently shrinking it. Each name is the base name of a
// pair X.xml and X.wbxml in goldenDir.
var goldenDocs = []string{
	"foldercreate-request", "foldercreate-response",
	"folderdelete-request", "folderdelete-response",
	"foldersync-request-initial", "foldersync-request",
	"foldersync-response-initial", "foldersync-response-changes", "foldersync-response-invalid-synckey",
	"folderupdate-request", "folderupdate-response",
	"sync-request-initial", "sync-request", "sync-request-heartbeat",
	"sync-response-initial", "sync-response-adds", "sync-response-changes", "sync-response-intl",
	"sync-response-heartbeat-limit",
	"getitemestimate-request", "getitemestimate-response",
	"moveitems-request", "moveitems-response",
	"ping-request", "ping-response-expired", "ping-response-changes", "ping-response-heartbeat",
	"ping-response-too-many-folders",
	"provision-request-phase1", "provision-response-phase1",
	"provision-request-phase2", "provision-response-phase2",
	"provision-response-wipe", "provision-request-wipe-ack", "provision-response-wipe-ack",
	"provision-response-account-wipe",
	"settings-request", "settings-response", "settings-request-oof-set",
	"sendmail-request", "sendmail-response-error",
	"smartreply-request", "smartreply-response-error",
	"smartforward-request", "smartforward-response-error",
	"itemoperations-request-fetch", "itemoperations-response-fetch",
	"itemoperations-request-emptyfolder", "itemoperations-response-emptyfolder",
	"search-request", "search-response", "search-request-gal", "search-response-gal",
	"find-request", "find-response",
	"resolverecipients-request", "resolverecipients-response",
}

// responseSchemas maps a golden document's command (the part of its name
// before the first '-') to Microsoft's schema for that command's response.
var responseSchemas = map[string]string{
	"foldersync":        "FolderSyncResponse",
	"foldercreate":      "FolderCreateResponse",
	"folderupdate":      "FolderUpdateResponse",
	"folderdelete":      "FolderDeleteResponse",
	"sync":              "SyncResponse",
	"getitemestimate":   "GetItemEstimateResponse",
	"moveitems":         "MoveItemsResponse",
	"ping":              "PingResponse",
	"provision":         "ProvisionResponse",
	"settings":          "SettingsResponse",
	"sendmail":          "SendMailResponse",
	"smartreply":        "SmartReplyResponse",
	"smartforward":      "SmartForwardResponse",
	"itemoperations":    "ItemOperationsResponse",
	"search":            "SearchResponse",
	"find":              "FindResponse",
	"resolverecipients": "ResolveRecipientsResponse",
}

// responseSchema returns the schema for a golden response document, or ""
// for a request.
func responseSchema(t *testing.T, name string) string {
	t.Helper()
	command, rest, _ := strings.Cut(name, "-")
	if !strings.HasPrefix(rest, "response") {
		return ""
	}
	schema, ok := responseSchemas[command]
	if !ok {
		t.Fatalf("%s: no schema known for command %q", name, command)
	}
	return schema
}

type golden struct {
	name string
	xml  []byte // the XML document, in the codec's canonical form
	bin  []byte // its WBXML encoding
}

func readGolden(t *testing.T, name string) golden {
	t.Helper()
	x, err := os.ReadFile(filepath.Join(goldenDir, name+".xml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(goldenDir, name+".wbxml"))
	if err != nil && !*update {
		t.Fatalf("%v (regenerate with: go test ./wbxml -run Golden -update)", err)
	}
	return golden{name: name, xml: x, bin: b}
}

func readGoldens(t *testing.T) []golden {
	t.Helper()
	gs := make([]golden, 0, len(goldenDocs))
	for _, name := range goldenDocs {
		gs = append(gs, readGolden(t, name))
	}
	return gs
}

// TestGoldenFilesListed fails when testdata/wbxml holds a document that
// goldenDocs does not list, or a .wbxml without its .xml.
func TestGoldenFilesListed(t *testing.T) {
	entries, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name, ext, _ := strings.Cut(e.Name(), ".")
		switch ext {
		case "xml", "wbxml":
			if !slices.Contains(goldenDocs, name) {
				t.Errorf("%s is not listed in goldenDocs", e.Name())
			}
		case "md":
		default:
			t.Errorf("unexpected file %s in %s", e.Name(), goldenDir)
		}
	}
}

// TestGolden checks each golden document both ways: its XML encodes to the
// committed WBXML byte for byte, the WBXML decodes to the committed XML
// byte for byte, and a decode followed by an encode gives the same bytes.
// With -update it rewrites both files from the XML instead.
func TestGolden(t *testing.T) {
	for _, name := range goldenDocs {
		t.Run(name, func(t *testing.T) {
			g := readGolden(t, name)
			fromXML, err := wbxml.FromXML(bytes.NewReader(g.xml))
			if err != nil {
				t.Fatalf("FromXML: %v", err)
			}
			enc, err := wbxml.Marshal(fromXML)
			if err != nil {
				t.Fatalf("Marshal: %v", err)
			}
			if *update {
				var canon bytes.Buffer
				if err := wbxml.ToXML(&canon, fromXML); err != nil {
					t.Fatalf("ToXML: %v", err)
				}
				writeFile(t, filepath.Join(goldenDir, name+".xml"), canon.Bytes())
				writeFile(t, filepath.Join(goldenDir, name+".wbxml"), enc)
				return
			}
			if d := byteDiff(enc, g.bin); d != "" {
				t.Errorf("Marshal(FromXML(%s.xml)) differs from %s.wbxml: %s", name, name, d)
			}

			parsed, err := wbxml.Parse(bytes.NewReader(g.bin), wbxml.DefaultLimits)
			if err != nil {
				t.Fatalf("Parse(%s.wbxml): %v", name, err)
			}
			var out bytes.Buffer
			if err := wbxml.ToXML(&out, parsed); err != nil {
				t.Fatalf("ToXML: %v", err)
			}
			if !bytes.Equal(out.Bytes(), g.xml) {
				t.Errorf("ToXML(Parse(%s.wbxml)) differs from %s.xml:\n%s", name, name, lineDiff(out.String(), string(g.xml)))
			}
			if d := wbxml.DiffTree(parsed, fromXML, ""); d != "" {
				t.Errorf("Parse(%s.wbxml) and FromXML(%s.xml) give different trees: %s", name, name, d)
			}
			again, err := wbxml.Marshal(parsed)
			if err != nil {
				t.Fatalf("Marshal(Parse): %v", err)
			}
			if d := byteDiff(again, g.bin); d != "" {
				t.Errorf("Marshal(Parse(%s.wbxml)) is not the identity: %s", name, d)
			}
		})
	}
}

// TestGoldenResponsesValidate checks every golden response against
// Microsoft's XSD for its command (element names, nesting and order).
func TestGoldenResponsesValidate(t *testing.T) {
	if _, err := wbxmltest.OraclesDir(); err != nil {
		t.Skipf("skipping XSD validation of the golden responses: %v (only the project's CI has it)", err)
	}
	wbxmltest.RequireTool(t, "xmllint", "libxml2-utils")
	n := 0
	for _, g := range readGoldens(t) {
		schema := responseSchema(t, g.name)
		if schema == "" {
			continue
		}
		n++
		t.Run(g.name, func(t *testing.T) {
			wbxmltest.ValidateResponse(t, schema, g.bin)
		})
	}
	if n < 30 {
		t.Errorf("validated only %d golden responses, want at least 30", n)
	}
}

// TestGoldenHandAssembled compares a few golden encodings with bytes put
// together by hand from MS-ASWBXML's code page tables, so that the goldens
// are not merely whatever the encoder happens to produce.
func TestGoldenHandAssembled(t *testing.T) {
	const (
		switchPage = 0x00
		end        = 0x01
		strI       = 0x03
		opaque     = 0xC3
		content    = 0x40
	)
	header := []byte{0x03, 0x01, 0x6A, 0x00} // WBXML 1.3, public ID 1, UTF-8, no string table
	str := func(s string) []byte { return append(append([]byte{strI}, s...), 0x00) }
	cat := func(parts ...any) []byte {
		var b []byte
		for _, p := range parts {
			switch p := p.(type) {
			case int:
				b = append(b, byte(p))
			case []byte:
				b = append(b, p...)
			default:
				t.Fatalf("cat: unexpected %T", p)
			}
		}
		return b
	}
	// The XML form holds the MIME message as text (CR escaped as &#xD;).
	rawMIME := []byte(goldenText(t, "sendmail-request", "Mime"))
	if len(rawMIME) != 989 {
		t.Fatalf("sendmail-request MIME is %d bytes; the hand-assembled length below assumes 989", len(rawMIME))
	}
	cases := []struct {
		name string
		want []byte
	}{
		{"foldersync-request-initial", cat(header,
			switchPage, 7, // FolderHierarchy
			0x16|content,                // FolderSync
			0x12|content, str("0"), end, // SyncKey
			end)},
		{"ping-response-changes", cat(header,
			switchPage, 13, // Ping
			0x05|content,                // Ping
			0x07|content, str("2"), end, // Status
			0x09|content,                // Folders
			0x0A|content, str("2"), end, // Folder
			0x0A|content, str("8"), end, // Folder
			end, end)},
		{"getitemestimate-request", cat(header,
			switchPage, 6, // GetItemEstimate
			0x05|content,                                                                     // GetItemEstimate
			0x07|content,                                                                     // Collections
			0x08|content,                                                                     // Collection
			switchPage, 0, 0x0B|content, str("{d3c1a9e2-77b0-4f35-a8c6-0e5f2b9d4c71}2"), end, // AirSync:SyncKey
			switchPage, 6, 0x0A|content, str("2"), end, // CollectionId
			switchPage, 0, 0x17|content, // AirSync:Options
			0x18|content, str("3"), end, // FilterType
			end, end, // Options, Collection
			switchPage, 6, 0x08|content, // Collection
			switchPage, 0, 0x0B|content, str("{0a94e6f3-1d27-48bc-9e05-c6b3f17a2d84}7"), end,
			switchPage, 6, 0x0A|content, str("5"), end,
			switchPage, 0, 0x17|content,
			0x18|content, str("2"), end,
			end, end, // Options, Collection
			end, end)}, // Collections, GetItemEstimate
		{"provision-response-wipe", cat(header,
			switchPage, 14, // Provision
			0x05|content,                // Provision
			0x0B|content, str("1"), end, // Status
			0x06|content,                                        // Policies
			0x07|content,                                        // Policy
			0x08|content, str("MS-EAS-Provisioning-WBXML"), end, // PolicyType
			0x0B|content, str("1"), end, // Status
			0x09|content, str("2870211469"), end, // PolicyKey
			0x0A|content,                // Data
			0x0D|content,                // EASProvisionDoc
			0x0E|content, str("0"), end, // DevicePasswordEnabled
			end, end, end, end, // EASProvisionDoc, Data, Policy, Policies
			0x0C, // RemoteWipe, empty
			end)},
		{"sendmail-request", cat(header,
			switchPage, 21, // ComposeMail
			0x05|content,                                          // SendMail
			0x11|content, str("SendMail-1764263052731-4127"), end, // ClientId
			0x08,                                           // SaveInSentItems, empty
			0x10|content, opaque, 0x87, 0x5D, rawMIME, end, // Mime: OPAQUE, mb_u_int32 989 = 0x87 0x5D
			end)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g := readGolden(t, c.name)
			if d := byteDiff(g.bin, c.want); d != "" {
				t.Errorf("%s.wbxml differs from the hand-assembled bytes: %s", c.name, d)
			}
		})
	}
}

// goldenText returns the text of the first element named local in a golden
// XML document, read with encoding/xml rather than the codec.
func goldenText(t *testing.T, name, local string) string {
	t.Helper()
	g := readGolden(t, name)
	dec := xml.NewDecoder(bytes.NewReader(g.xml))
	for {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%s.xml has no element %s: %v", name, local, err)
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == local {
			var s string
			if err := dec.DecodeElement(&s, &se); err != nil {
				t.Fatal(err)
			}
			return s
		}
	}
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// byteDiff describes the first difference between got and want, or returns
// "" when they are equal.
func byteDiff(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	window := func(b []byte) string {
		lo, hi := max(i-8, 0), min(i+8, len(b))
		return fmt.Sprintf("% X", b[lo:hi])
	}
	return fmt.Sprintf("lengths %d and %d, first difference at byte %d (0x%X): got …%s…, want …%s…",
		len(got), len(want), i, i, window(got), window(want))
}

// lineDiff shows the first differing line of two texts.
func lineDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d:\n got: %q\nwant: %q", i+1, gl, wl)
		}
	}
	return "(texts differ only in line endings)"
}
