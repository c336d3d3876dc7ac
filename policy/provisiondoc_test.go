package policy

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/easgate/easgate/wbxml"
	"github.com/easgate/easgate/wbxml/wbxmltest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var allVersions = []string{"12.0", "12.1", "14.0", "14.1", "16.0", "16.1"}

func toXML(t *testing.T, e *wbxml.Element) string {
	t.Helper()
	var b bytes.Buffer
	if err := wbxml.ToXML(&b, e); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./policy -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file:\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

func exampleConfig(t *testing.T) *Config {
	t.Helper()
	c, err := Load("../docs/policy.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestProvisionDocGolden pins the document of the permissive default and of
// the example's "lockdown" policy (every setting set) for each version.
func TestProvisionDocGolden(t *testing.T) {
	c := exampleConfig(t)
	for _, v := range allVersions {
		golden(t, "provisiondoc-default-"+v+".xml", toXML(t, Default().DefaultPolicy().ProvisionDoc(v)))
		golden(t, "provisiondoc-lockdown-"+v+".xml", toXML(t, c.Policy("lockdown").ProvisionDoc(v)))
	}
}

func TestProvisionDocVersions(t *testing.T) {
	lock := exampleConfig(t).Policy("lockdown")
	count := func(v string) int { return len(lock.ProvisionDoc(v).Children) }
	if n := count("12.0"); n != 11 {
		t.Errorf("12.0 document has %d settings, want the 11 of 12.0", n)
	}
	if n := count("2.5"); n != 11 {
		t.Errorf("2.5 document has %d settings, want the 12.0 set", n)
	}
	for _, v := range []string{"12.1", "14.0", "14.1", "16.0", "16.1"} {
		if n := count(v); n != len(settingSpecs) {
			t.Errorf("%s document has %d settings, want %d", v, n, len(settingSpecs))
		}
	}
	// Schema order, and one tag per setting.
	doc := lock.ProvisionDoc("16.1")
	for i, child := range doc.Children {
		if want := settingTags[settingSpecs[i].name].tag; child.Tag != want {
			t.Errorf("child %d has tag %v, want %s", i, child.Tag, settingSpecs[i].name)
		}
	}
	if len(settingTags) != len(settingSpecs) {
		t.Errorf("%d tags for %d settings", len(settingTags), len(settingSpecs))
	}
	// The permissive default says "no password" and nothing else.
	d := Default().DefaultPolicy().ProvisionDoc("16.1")
	if len(d.Children) != 1 || d.Children[0].Tag != wbxml.ProvisionDevicePasswordEnabled || d.Children[0].Text != "0" {
		t.Errorf("permissive document = %s", toXML(t, d))
	}
}

// responses builds one Provision answer of each shape the state machine
// produces, for the schema checks.
func responses(t *testing.T, version string) map[string]*wbxml.Element {
	t.Helper()
	c := exampleConfig(t)
	out := make(map[string]*wbxml.Element)
	add := func(name string, r ProvisionResult) {
		if e := r.Response(version); e != nil {
			out[name] = e
		}
	}
	p := newPhone(t, c, version)
	p.user = "ceo@example.com" // lockdown: every setting
	r1 := p.phase1()
	add("phase1-lockdown", r1)
	add("phase2", p.phase2(r1.PolicyKey, 1))
	add("wrong-key", p.phase2(r1.PolicyKey+1, 1))
	add("unknown-type", p.provision(ProvisionRequest{HasPolicy: true, PolicyType: "MS-WAP-Provisioning-XML"}))
	add("no-policies", p.provision(ProvisionRequest{}))

	q := newPhone(t, c, version)
	q.user = "someone@elsewhere.example"
	add("phase1-default", q.phase1())
	q.dev.Wipe = WipePending
	add("phase1-wipe", q.phase1())
	add("wipe-ack", q.provision(ProvisionRequest{WipeStatus: 1}))
	add("after-wipe", q.phase1())

	if version == "16.1" {
		a := newPhone(t, c, version)
		a.dev.Wipe, a.dev.WipeAccountOnly = WipePending, true
		add("phase1-account-wipe", a.phase1())
	}
	b := newPhone(t, c, version)
	b.dev.Access = ActionBlock
	add("blocked", b.phase1())
	return out
}

// TestProvisionResponsesValidate encodes every answer shape for every
// version and checks it against Microsoft's ProvisionResponse schema twice:
// decoded by this project's codec (wbxmltest.ValidateResponse), and decoded
// by libwbxml, an independent codec, so that a wrong token on either side
// shows. libwbxml spells token 14:10 by its 12.0 name,
// DeviceEncryptionEnabled, and lacks AccountOnlyRemoteWipe (14:3B), so
// those answers get only the first check.
func TestProvisionResponsesValidate(t *testing.T) {
	for _, v := range allVersions {
		for name, e := range responses(t, v) {
			t.Run(v+"/"+name, func(t *testing.T) {
				body, err := wbxml.Marshal(e)
				if err != nil {
					t.Fatal(err)
				}
				wbxmltest.ValidateResponse(t, "ProvisionResponse", body)
				if strings.Contains(name, "account-wipe") {
					return
				}
				dir, err := wbxmltest.OraclesDir()
				if err != nil {
					t.Skipf("skipping libwbxml check: %v", err)
				}
				xmllint := wbxmltest.RequireTool(t, "xmllint", "libxml2-utils")
				doc := wbxmltest.LibwbxmlDecode(t, body)
				doc = strings.Replace(doc, wbxmltest.LibwbxmlDoctype, "", 1)
				doc = strings.ReplaceAll(doc, "DeviceEncryptionEnabled>", "RequireStorageCardEncryption>")
				cmd := exec.Command(xmllint, "--noout", "--nowarning", "--schema",
					filepath.Join(dir, "ms-xsd", "validate-ProvisionResponse.xsd"), "-")
				cmd.Stdin = bytes.NewReader(wbxmltest.SchemaXML([]byte(doc)))
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("libwbxml's decoding does not validate: %v\n%s\ndocument:\n%s", err, lastLines(out, 5), doc)
				}
			})
		}
	}
}

// lastLines keeps xmllint's verdict and drops its namespace warnings.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestProvisionResponseGolden pins the element order of the full answers:
// DeviceInformation, Status, Policies, RemoteWipe.
func TestProvisionResponseGolden(t *testing.T) {
	r := ProvisionResult{
		Status: 1, DeviceInformationStatus: 1, PolicyStatus: 1, PolicyType: PolicyTypeWBXML,
		PolicyKey: 1234567890, Policy: Default().DefaultPolicy(), RemoteWipe: true,
	}
	golden(t, "provision-response-phase1-wipe.xml", toXML(t, r.Response("16.1")))
	r = ProvisionResult{Status: 1, PolicyStatus: 1, PolicyType: PolicyTypeWBXML, PolicyKey: 4000000000, AccountOnlyRemoteWipe: true}
	golden(t, "provision-response-phase2-account-wipe.xml", toXML(t, r.Response("16.1")))
	if (&ProvisionResult{HTTPStatus: 403}).Response("12.1") != nil {
		t.Error("a 403 answer has a body")
	}
}
