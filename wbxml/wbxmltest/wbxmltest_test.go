package wbxmltest

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/easgate/easgate/wbxml"
)

func TestSchemaXML(t *testing.T) {
	in := `<FolderSync xmlns="FolderHierarchy:"><X xmlns="AirSyncBase:">AirSync:</X></FolderSync>`
	want := `<FolderSync xmlns="FolderHierarchy"><X xmlns="AirSyncBase">AirSync:</X></FolderSync>`
	if got := string(SchemaXML([]byte(in))); got != want {
		t.Errorf("SchemaXML = %s, want %s", got, want)
	}
}

// TestCheckResponse shows that the schema check passes a well-formed
// FolderCreate response and catches one with its elements out of order.
func TestCheckResponse(t *testing.T) {
	if _, err := OraclesDir(); errors.Is(err, ErrNoOracles) {
		t.Skipf("skipping: %v (only the project's CI has it)", err)
	}
	RequireTool(t, "xmllint", "libxml2-utils")
	encode := func(children ...*wbxml.Element) []byte {
		b, err := wbxml.Marshal(wbxml.E(wbxml.FolderHierarchyFolderCreate, children...))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	status := wbxml.T(wbxml.FolderHierarchyStatus, "1")
	syncKey := wbxml.T(wbxml.FolderHierarchySyncKey, "{5b0f2d6e-8c41-4a7e-b3d2-91e07c4a6f18}3")
	serverID := wbxml.T(wbxml.FolderHierarchyServerId, "11")

	if err := CheckResponse("FolderCreateResponse", encode(status, syncKey, serverID)); err != nil {
		t.Errorf("well-formed response: %v", err)
	}
	err := CheckResponse("FolderCreateResponse", encode(syncKey, status, serverID))
	if err == nil || !strings.Contains(err.Error(), "does not validate") {
		t.Errorf("out-of-order response: got %v, want a validation error", err)
	}
	if err := CheckResponse("NoSuchResponse", encode(status)); err == nil {
		t.Error("unknown schema: got no error")
	}
	if err := CheckResponse("FolderCreateResponse", []byte{0x03, 0x01, 0x6A}); err == nil {
		t.Error("truncated body: got no error")
	}
}

// TestLibwbxml round-trips a small document through libwbxml's decoder and
// encoder.
func TestLibwbxml(t *testing.T) {
	body := []byte{0x03, 0x01, 0x6A, 0x00, 0x00, 0x0D, 0x45, 0x47, 0x03, '1', 0x00, 0x01, 0x01} // Ping > Status 1
	doc := LibwbxmlDecode(t, body)
	if !strings.Contains(doc, `<Ping xmlns="Ping:"><Status>1</Status></Ping>`) {
		t.Fatalf("LibwbxmlDecode = %s", doc)
	}
	if got := LibwbxmlEncode(t, doc); !bytes.Equal(got, body) {
		t.Errorf("LibwbxmlEncode = % X, want % X", got, body)
	}
	if got := LibwbxmlEncode(t, `<Ping xmlns="Ping:"><Status>1</Status></Ping>`); !bytes.Equal(got, body) {
		t.Errorf("LibwbxmlEncode without DOCTYPE = % X, want % X", got, body)
	}
}
