// Package wbxmltest holds test helpers for code that produces or consumes
// EAS WBXML: it checks a body against Microsoft's XSD schemas and against
// libwbxml, an independent WBXML codec.
//
// Both checks need outside tools. libwbxml's wbxml2xml and xml2wbxml come
// from the Debian package libwbxml2-utils and xmllint from libxml2-utils; a
// test that needs a missing tool fails and names the package. The XSD
// schemas live in the project's shared oracles folder (../shared/oracles
// beside the module root), which users who clone the project do not have:
// schema checks skip, with a message saying so, when it is absent.
package wbxmltest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/easgate/easgate/wbxml"
)

// ErrNoOracles reports that the shared oracles folder is not present.
var ErrNoOracles = errors.New("wbxmltest: shared oracles folder (../shared/oracles beside the module root) not found")

// OraclesDir returns the shared oracles folder: the directory
// ../shared/oracles relative to the module root (the nearest directory at
// or above the working directory that holds go.mod). It returns
// ErrNoOracles when that folder does not exist.
func OraclesDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", ErrNoOracles
		}
		dir = parent
	}
	oracles := filepath.Join(dir, "..", "shared", "oracles")
	if _, err := os.Stat(filepath.Join(oracles, "ms-xsd")); err != nil {
		return "", ErrNoOracles
	}
	return filepath.Clean(oracles), nil
}

// RequireTool returns the path of the executable name, or fails tb with a
// message naming the Debian package that provides it.
func RequireTool(tb testing.TB, name, debianPackage string) string {
	tb.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("%s not found in PATH: install Debian package %s", name, debianPackage)
	}
	return path
}

var nsColon = regexp.MustCompile(`xmlns="([A-Za-z0-9]+):"`)

// SchemaXML turns the codec's XML text form of a document into the form
// Microsoft's XSDs expect: namespaces without the trailing colon.
func SchemaXML(codecXML []byte) []byte {
	return nsColon.ReplaceAll(codecXML, []byte(`xmlns="$1"`))
}

// CheckResponse validates the WBXML response body against Microsoft's
// schema for one command response, named as in the oracles folder
// ("SyncResponse", "FolderSyncResponse", "PingResponse", ...). The body is
// decoded with this project's codec, which names every element as
// Microsoft's schemas do (libwbxml's names differ for Email:Flag's Status,
// Settings' SMTPAddress and others, and it has no Find code page, so its
// XML cannot be checked against the schemas as it stands). It returns
// ErrNoOracles when the oracles folder is absent and an error carrying
// xmllint's report when the body does not validate.
func CheckResponse(schema string, body []byte) error {
	dir, err := OraclesDir()
	if err != nil {
		return err
	}
	xsd := filepath.Join(dir, "ms-xsd", "validate-"+schema+".xsd")
	if _, err := os.Stat(xsd); err != nil {
		return fmt.Errorf("wbxmltest: no schema %q in %s", schema, filepath.Join(dir, "ms-xsd"))
	}
	root, err := wbxml.Parse(bytes.NewReader(body), wbxml.DefaultLimits)
	if err != nil {
		return fmt.Errorf("wbxmltest: decode %s body: %w", schema, err)
	}
	var doc bytes.Buffer
	if err := wbxml.ToXML(&doc, root); err != nil {
		return fmt.Errorf("wbxmltest: %s body to XML: %w", schema, err)
	}
	cmd := exec.Command("xmllint", "--noout", "--nowarning", "--schema", xsd, "-")
	cmd.Stdin = bytes.NewReader(SchemaXML(doc.Bytes()))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("wbxmltest: %s does not validate: %v\n%s\ndocument:\n%s", schema, err, out, doc.Bytes())
	}
	return nil
}

// ValidateResponse fails tb unless body validates against Microsoft's
// schema for the named response (see CheckResponse). It skips tb when the
// shared oracles folder is absent, and fails it when xmllint is missing.
func ValidateResponse(tb testing.TB, schema string, body []byte) {
	tb.Helper()
	if _, err := OraclesDir(); err != nil {
		tb.Skipf("skipping XSD validation: %v (only the project's CI has it)", err)
	}
	RequireTool(tb, "xmllint", "libxml2-utils")
	if err := CheckResponse(schema, body); err != nil {
		tb.Fatal(err)
	}
}

// LibwbxmlDoctype is the document type line xml2wbxml needs to pick its
// ActiveSync tables.
const LibwbxmlDoctype = `<!DOCTYPE ActiveSync PUBLIC "-//MICROSOFT//DTD ActiveSync//EN" "http://www.microsoft.com/">`

// LibwbxmlDecode decodes body with libwbxml (wbxml2xml -l ACTIVESYNC) and
// returns its XML: compact, with whitespace in text kept, the element
// names libwbxml uses and namespaces such as xmlns="Email:". libwbxml
// writes the content of the elements it treats as binary (ComposeMail Mime,
// Email2 ConversationId and ConversationIndex, among others) as base64,
// and tags it does not know as <unknown/>. It fails tb when wbxml2xml is
// missing or rejects the body.
func LibwbxmlDecode(tb testing.TB, body []byte) string {
	tb.Helper()
	RequireTool(tb, "wbxml2xml", "libwbxml2-utils")
	cmd := exec.Command("wbxml2xml", "-l", "ACTIVESYNC", "-m", "0", "-k", "-o", "-", "-")
	cmd.Stdin = bytes.NewReader(body)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("wbxml2xml: %v: %s%s", err, stderr.Bytes(), stdout.Bytes())
	}
	return stdout.String()
}

// LibwbxmlEncode encodes an XML document in libwbxml's ActiveSync naming
// with libwbxml (xml2wbxml -a -n -k: no public identifier, no string
// table, whitespace kept), adding LibwbxmlDoctype when the document lacks
// it. It fails tb when xml2wbxml is missing or rejects the document.
func LibwbxmlEncode(tb testing.TB, doc string) []byte {
	tb.Helper()
	RequireTool(tb, "xml2wbxml", "libwbxml2-utils")
	if !strings.Contains(doc, "<!DOCTYPE") {
		doc = `<?xml version="1.0"?>` + LibwbxmlDoctype + strings.TrimPrefix(doc, `<?xml version="1.0"?>`)
	}
	cmd := exec.Command("xml2wbxml", "-a", "-n", "-k", "-o", "-", "-")
	cmd.Stdin = strings.NewReader(doc)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("xml2wbxml: %v: %s%s", err, stderr.Bytes(), stdout.Bytes())
	}
	return stdout.Bytes()
}
