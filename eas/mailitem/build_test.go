package mailitem

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/easgate/easgate/wbxml"
	"github.com/easgate/easgate/wbxml/wbxmltest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// testDate is the INTERNALDATE of every test message.
var testDate = time.Date(2024, 3, 5, 9, 20, 30, 0, time.FixedZone("CET", 3600))

func testFileRef(path []int) string { return "5:42:" + PathString(path) }

// html and plain preferences as AOSP and iOS send them.
var (
	prefHTML     = []BodyPreference{{Type: BodyHTML, TruncationSize: 200000}}
	prefPlain    = []BodyPreference{{Type: BodyPlain}}
	prefPreview  = []BodyPreference{{Type: BodyHTML, TruncationSize: 1024, Preview: 40}}
	prefPlainOne = []BodyPreference{{Type: BodyRTF}, {Type: BodyPlain, TruncationSize: 51200}}
)

type goldenCase struct {
	name  string
	eml   string
	flags []string
	opts  Options
}

var goldenCases = []goldenCase{
	{"plain-ascii-14.1", "plain-ascii.eml", nil, Options{Version: "14.1", BodyPreferences: prefPlain}},
	{"plain-ascii-12.1", "plain-ascii.eml", []string{`\Seen`, `\Flagged`, "Work"}, Options{Version: "12.1", BodyPreferences: prefPreview}},
	{"plain-ascii-16.1-drafts", "plain-ascii.eml", []string{`\Seen`, `\Draft`}, Options{Version: "16.1", BodyPreferences: prefPlain, Drafts: true}},
	{"plain-ascii-16.1", "plain-ascii.eml", []string{`\Seen`}, Options{Version: "16.1", BodyPreferences: prefHTML}},
	{"flags-14.1", "plain-ascii.eml", []string{`\Seen`, `\Flagged`, `\Answered`, "$Forwarded", "$MDNSent", "$Junk", "Work", "Family", "work", `\Recent`}, Options{Version: "14.1", BodyPreferences: prefPreview}},
	{"forwarded-14.0", "plain-ascii.eml", []string{"$Forwarded"}, Options{Version: "14.0", BodyPreferences: prefPlain}},
	{"utf8-qp", "utf8-qp.eml", nil, Options{Version: "14.1", BodyPreferences: prefPlain}},
	{"latin1", "latin1.eml", nil, Options{Version: "14.1", BodyPreferences: prefPlain}},
	{"cp1252-8bit", "cp1252-8bit.eml", nil, Options{Version: "14.1", BodyPreferences: prefPlain}},
	{"shiftjis", "shiftjis.eml", nil, Options{Version: "14.1", BodyPreferences: prefPlain}},
	{"alternative-html", "alternative.eml", nil, Options{Version: "14.1", BodyPreferences: prefHTML}},
	{"alternative-plain", "alternative.eml", nil, Options{Version: "14.1", BodyPreferences: prefPlainOne}},
	{"mixed-attachments", "mixed-attachments.eml", nil, Options{Version: "14.1", BodyPreferences: prefPreview, FileRef: testFileRef}},
	{"rfc2231", "rfc2231.eml", nil, Options{Version: "14.1", BodyPreferences: prefPlain, FileRef: testFileRef}},
	{"html-only-plain", "html-only.eml", nil, Options{Version: "14.1", BodyPreferences: prefPlain}},
	{"html-only-html", "html-only.eml", nil, Options{Version: "14.1", BodyPreferences: prefPreview}},
	{"plain-as-html", "plain-ascii.eml", nil, Options{Version: "14.1", BodyPreferences: prefHTML}},
	{"trunc-utf8", "trunc-utf8.eml", nil, Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 10}}}},
	{"trunc-utf8-emoji", "trunc-utf8.eml", nil, Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 23}}}},
	{"trunc-allornone", "trunc-utf8.eml", nil, Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 10, AllOrNone: true, Preview: 5}}}},
	{"allornone-fits", "trunc-utf8.eml", nil, Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 1000, AllOrNone: true}}}},
	{"mime", "utf8-qp.eml", nil, Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyMIME}}}},
	{"mime-truncated", "plain-ascii.eml", nil, Options{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyMIME, TruncationSize: 100}}}},
	{"mime-always", "alternative.eml", nil, Options{Version: "14.1", BodyPreferences: prefHTML, MIMESupport: MIMEAlways}},
	{"smime-signed", "smime-signed.eml", nil, Options{Version: "14.1", BodyPreferences: prefHTML, MIMESupport: MIMENever, FileRef: testFileRef}},
	{"smime-signed-mime", "smime-signed.eml", nil, Options{Version: "14.1", BodyPreferences: prefHTML, MIMESupport: MIMESMIMEOnly}},
	{"smime-encrypted", "smime-encrypted.eml", nil, Options{Version: "14.1", BodyPreferences: prefHTML, FileRef: testFileRef}},
	{"malformed", "malformed.eml", nil, Options{Version: "16.1", BodyPreferences: prefPreview}},
}

func readSource(t testing.TB, eml string, flags []string) Source {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", eml))
	if err != nil {
		t.Fatal(err)
	}
	return FromBytes(raw, Meta{UID: 42, Flags: flags, InternalDate: testDate})
}

func toXML(t testing.TB, e *wbxml.Element) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := wbxml.ToXML(&buf, e); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// syncResponse wraps item data in a Sync response with one Add, as the
// sync engine sends it.
func syncResponse(ad *wbxml.Element) *wbxml.Element {
	return wbxml.E(wbxml.AirSyncSync,
		wbxml.E(wbxml.AirSyncCollections,
			wbxml.E(wbxml.AirSyncCollection,
				wbxml.T(wbxml.AirSyncSyncKey, "{00000000-0000-0000-0000-000000000000}2"),
				wbxml.T(wbxml.AirSyncCollectionId, "5"),
				wbxml.T(wbxml.AirSyncStatus, "1"),
				wbxml.E(wbxml.AirSyncCommands,
					wbxml.E(wbxml.AirSyncAdd,
						wbxml.T(wbxml.AirSyncServerId, "5:42"),
						ad)))))
}

// TestGolden converts each test message and compares the ApplicationData
// with testdata/golden/<name>.xml byte for byte, then checks a Sync
// response carrying it against Microsoft's schema.
func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			item, err := Build(context.Background(), readSource(t, tc.eml, tc.flags), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			got := toXML(t, item.ApplicationData)
			checkGolden(t, tc.name, got)
			// The XML form must read back to the same tree.
			back, err := wbxml.FromXML(bytes.NewReader(got))
			if err != nil {
				t.Fatalf("FromXML: %v", err)
			}
			if again := toXML(t, back); !bytes.Equal(again, got) {
				t.Errorf("XML form does not round-trip:\n%s", again)
			}
			body, err := wbxml.Marshal(syncResponse(item.ApplicationData))
			if err != nil {
				t.Fatal(err)
			}
			wbxmltest.ValidateResponse(t, "SyncResponse", body)
		})
	}
}

// TestChangeData checks the flag-only ApplicationData of a Sync Change
// against testdata/golden/change-<name>.xml and the schema.
func TestChangeData(t *testing.T) {
	tests := []struct {
		name, version string
		flags         []string
	}{
		{"12.1-seen", "12.1", []string{`\Seen`, "Work"}},
		{"14.1-flagged", "14.1", []string{`\Flagged`, "$Forwarded", "Work"}},
		{"16.1-none", "16.1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ad := ChangeData(tt.flags, Options{Version: tt.version})
			checkGolden(t, "change-"+tt.name, toXML(t, ad))
			change := wbxml.E(wbxml.AirSyncSync,
				wbxml.E(wbxml.AirSyncCollections,
					wbxml.E(wbxml.AirSyncCollection,
						wbxml.T(wbxml.AirSyncSyncKey, "k2"),
						wbxml.T(wbxml.AirSyncCollectionId, "5"),
						wbxml.T(wbxml.AirSyncStatus, "1"),
						wbxml.E(wbxml.AirSyncCommands,
							wbxml.E(wbxml.AirSyncChange,
								wbxml.T(wbxml.AirSyncServerId, "5:42"), ad)))))
			body, err := wbxml.Marshal(change)
			if err != nil {
				t.Fatal(err)
			}
			wbxmltest.ValidateResponse(t, "SyncResponse", body)
		})
	}
}

// checkGolden compares got with testdata/golden/<name>.xml, rewriting the
// file first with -update.
func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	golden := filepath.Join("testdata", "golden", name+".xml")
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("differs from %s:\n%s", golden, got)
	}
}

// TestItemOperations checks an ItemOperations Fetch response carrying a
// whole item (Properties) and one carrying only a body against the schema.
func TestItemOperations(t *testing.T) {
	opts := Options{Version: "16.1", BodyPreferences: []BodyPreference{{Type: BodyHTML}}, FileRef: testFileRef}
	item, err := Build(context.Background(), readSource(t, "mixed-attachments.eml", nil), opts)
	if err != nil {
		t.Fatal(err)
	}
	body, err := BuildBody(context.Background(), readSource(t, "mixed-attachments.eml", nil), opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(toXML(t, body), toXML(t, item.ApplicationData.Child(wbxml.AirSyncBaseBody))) {
		t.Errorf("BuildBody differs from Build's body:\n%s", toXML(t, body))
	}
	fetch := func(props *wbxml.Element) *wbxml.Element {
		return wbxml.E(wbxml.ItemOperationsFetch,
			wbxml.T(wbxml.ItemOperationsStatus, "1"),
			wbxml.T(wbxml.AirSyncCollectionId, "5"),
			wbxml.T(wbxml.AirSyncServerId, "5:42"),
			wbxml.T(wbxml.AirSyncClass, "Email"),
			props)
	}
	resp := wbxml.E(wbxml.ItemOperationsItemOperations,
		wbxml.T(wbxml.ItemOperationsStatus, "1"),
		wbxml.E(wbxml.ItemOperationsResponse,
			fetch(item.Properties()),
			fetch(wbxml.E(wbxml.ItemOperationsProperties, body))))
	enc, err := wbxml.Marshal(resp)
	if err != nil {
		t.Fatal(err)
	}
	wbxmltest.ValidateResponse(t, "ItemOperationsResponse", enc)
}
