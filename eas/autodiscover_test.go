package eas

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beevik/etree"

	"github.com/easgate/easgate/wbxml/wbxmltest"
)

func autodiscoverRequest(schema string) string {
	return `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/mobilesync/requestschema/2006">
  <Request>
    <EMailAddress>jane@example.com</EMailAddress>
    <AcceptableResponseSchema>` + schema + `</AcceptableResponseSchema>
  </Request>
</Autodiscover>`
}

// validateAutodiscover checks an Autodiscover response against Microsoft's
// schemas with xmllint.
func validateAutodiscover(t *testing.T, body []byte) {
	t.Helper()
	dir, err := wbxmltest.OraclesDir()
	if err != nil {
		t.Skipf("schema check skipped: %v", err)
	}
	wbxmltest.RequireTool(t, "xmllint", "libxml2-utils")
	// AutodiscoverResponse.xsd refers to the mobilesync namespace without
	// importing it, which xmllint refuses; a temporary copy adds the import.
	xsd := filepath.Join(dir, "ms-xsd")
	orig, err := os.ReadFile(filepath.Join(xsd, "AutodiscoverResponse.xsd"))
	if err != nil {
		t.Fatal(err)
	}
	open := strings.Index(string(orig), "<xs:element")
	if open < 0 {
		t.Fatal("AutodiscoverResponse.xsd has no element")
	}
	patched := string(orig[:open]) + `<xs:import namespace="` + nsMobileSyncResponse + `" schemaLocation="` +
		filepath.Join(xsd, "AutodiscoverMobileSync.xsd") + `"/>` + string(orig[open:])
	wrapper := filepath.Join(t.TempDir(), "autodiscover.xsd")
	if err := os.WriteFile(wrapper, []byte(patched), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("xmllint", "--noout", "--schema", wrapper, "-")
	cmd.Stdin = strings.NewReader(string(body))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("response does not validate: %v\n%s\n%s", err, out, body)
	}
}

func TestAutodiscover(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, path, body string
		auth             bool
		code             int
		wantURL          string // "" for the error document
	}{
		{"no credentials", AutodiscoverPath, autodiscoverRequest(nsMobileSyncResponse), false, 401, ""},
		{"mobilesync", AutodiscoverPath, autodiscoverRequest(nsMobileSyncResponse), true, 200, "https://mail.example.com/Microsoft-Server-ActiveSync"},
		{"path in other case", "/AutoDiscover/AutoDiscover.xml", autodiscoverRequest(nsMobileSyncResponse), true, 200, "https://mail.example.com/Microsoft-Server-ActiveSync"},
		{"outlook schema", AutodiscoverPath, autodiscoverRequest("http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"), true, 200, ""},
		{"malformed", AutodiscoverPath, "<Autodiscover><Request>", true, 200, ""},
		{"not autodiscover", AutodiscoverPath, "<html/>", true, 200, ""},
		{"empty", AutodiscoverPath, "", true, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, tt.path, strings.NewReader(tt.body))
			r.Header.Set("Content-Type", "text/xml")
			if tt.auth {
				r.Header.Set("Authorization", basic(testUser, testPassword))
			}
			w := e.do(r)
			if w.Code != tt.code {
				t.Fatalf("code %d, want %d", w.Code, tt.code)
			}
			if tt.code != 200 {
				return
			}
			if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
				t.Errorf("Content-Type %q", ct)
			}
			validateAutodiscover(t, w.Body.Bytes())
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(w.Body.Bytes()); err != nil {
				t.Fatal(err)
			}
			if tt.wantURL != "" {
				for path, want := range map[string]string{
					"/Autodiscover/Response/Culture":                     "en:us",
					"/Autodiscover/Response/User/EMailAddress":           testUser,
					"/Autodiscover/Response/User/DisplayName":            "jane",
					"/Autodiscover/Response/Action/Settings/Server/Type": "MobileSync",
					"/Autodiscover/Response/Action/Settings/Server/Url":  tt.wantURL,
					"/Autodiscover/Response/Action/Settings/Server/Name": tt.wantURL,
				} {
					if el := doc.FindElement(path); el == nil || el.Text() != want {
						t.Errorf("%s: %v, want %q\n%s", path, el, want, w.Body.String())
					}
				}
				return
			}
			if el := doc.FindElement("/Autodiscover/Response/Error/ErrorCode"); el == nil || el.Text() != "600" {
				t.Errorf("no ErrorCode 600:\n%s", w.Body.String())
			}
			if el := doc.FindElement("/Autodiscover/Response/Error/Message"); el == nil || el.Text() != "Invalid Request" {
				t.Errorf("no Message:\n%s", w.Body.String())
			}
		})
	}
	r := httptest.NewRequest(http.MethodGet, AutodiscoverPath, nil)
	if w := e.do(r); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
}

func TestAutodiscoverURLFromHost(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PublicURL = "" })
	r := httptest.NewRequest(http.MethodPost, "https://eas.example.net"+AutodiscoverPath, strings.NewReader(autodiscoverRequest(nsMobileSyncResponse)))
	r.Header.Set("Authorization", basic(testUser, testPassword))
	w := e.do(r)
	if !strings.Contains(w.Body.String(), "<Url>https://eas.example.net/Microsoft-Server-ActiveSync</Url>") {
		t.Errorf("response:\n%s", w.Body.String())
	}
}
