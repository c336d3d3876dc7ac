package policy

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadExample(t *testing.T) {
	c, err := Load("../docs/policy.example.toml")
	if err != nil {
		t.Fatalf("docs/policy.example.toml does not load: %v", err)
	}
	if got := len(c.Policies()); got != 3 {
		t.Errorf("policies = %d, want 3", got)
	}
	lock := c.Policy("lockdown")
	if lock == nil {
		t.Fatal("no lockdown policy")
	}
	// The example sets every setting, so it documents them all.
	for _, spec := range settingSpecs {
		if !isSet(lock.Settings.field(spec)) {
			t.Errorf("example lockdown policy does not show %s", spec.name)
		}
	}
	if !c.ProvisioningRequired() || !c.Exempt("WindowsOutlook", "") || c.Exempt("iPhone", "Apple-iPhone/1") {
		t.Error("provisioning section not as written")
	}
	if got := c.PolicyFor("CEO@Example.com").Name; got != "lockdown" {
		t.Errorf("ceo policy = %q", got)
	}
	if a, rule := c.Access("bob@contractors.example.com", "iPhone", "Apple-iPhone/1", ""); a != ActionQuarantine || rule != "contractors-need-approval" {
		t.Errorf("contractor access = %v %q", a, rule)
	}
}

func TestDefaultConfig(t *testing.T) {
	c := Default()
	p := c.DefaultPolicy()
	if p.Name != DefaultPolicyName || !reflect.DeepEqual(p.Settings, Settings{}) || !p.AllowUnapplied {
		t.Errorf("default policy = %+v", p)
	}
	if !c.ProvisioningRequired() || !c.Exempt("windowsoutlook", "") {
		t.Error("default provisioning section wrong")
	}
	if a, rule := c.Access("a@b", "iPhone", "x", "y"); a != ActionAllow || rule != "" {
		t.Errorf("default access = %v %q", a, rule)
	}
	// An empty file is the same as no file.
	e, err := Parse("empty.toml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.DefaultPolicy().Hash() != p.Hash() {
		t.Error("empty file and Default differ")
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
}

// TestLoadErrors has one row per validation the loader does. want is the
// exact start of the message: "file:line: key: ".
func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"syntax", "[policies.a]\nDevicePasswordEnabled = \n", "p.toml:2: "},
		{"unknown top-level key", "default_policy = \"default\"\nfrobnicate = 1\n", "p.toml:2: frobnicate: unknown key"},
		{"unknown setting (typo)", "[policies.a]\nDevicePasswordEnabled = true\nDevicePasswordEnable = true\n", "p.toml:3: policies.a.DevicePasswordEnable: unknown key"},
		{"unknown provisioning key", "[provisioning]\nrequire = false\n", "p.toml:2: provisioning.require: unknown key"},
		{"unknown rule key", "[[access.rules]]\nname = \"r\"\naction = \"block\"\ndevicetype = \"x\"\n", "p.toml:4: access.rules.devicetype: unknown key"},
		{"wrong type", "[policies.a]\nMinDevicePasswordLength = \"six\"\n", "p.toml:2: policies.a.MinDevicePasswordLength: "},
		{"wrong type, quoted policy name", "[policies.\"my p\"]\nAllowCamera = 1\n", "p.toml:2: policies.\"my p\".AllowCamera: incompatible types"},
		{"bool as int", "[policies.a]\nAllowCamera = 1\n", "p.toml:2: policies.a.AllowCamera: "},
		{"MinDevicePasswordLength low", "[policies.a]\nMinDevicePasswordLength = 0\n", "p.toml:2: policies.a.MinDevicePasswordLength: 0 is out of range (characters, 1-16)"},
		{"MinDevicePasswordLength high", "[policies.a]\n\nMinDevicePasswordLength = 17\n", "p.toml:3: policies.a.MinDevicePasswordLength: 17 is out of range"},
		{"MaxInactivityTimeDeviceLock", "[policies.a]\nMaxInactivityTimeDeviceLock = 0\n", "p.toml:2: policies.a.MaxInactivityTimeDeviceLock: 0 is out of range"},
		{"MaxDevicePasswordFailedAttempts", "[policies.a]\nMaxDevicePasswordFailedAttempts = 3\n", "p.toml:2: policies.a.MaxDevicePasswordFailedAttempts: 3 is out of range (attempts, 4-16)"},
		{"MaxAttachmentSize", "[policies.a]\nMaxAttachmentSize = -1\n", "p.toml:2: policies.a.MaxAttachmentSize: -1 is out of range"},
		{"MaxAttachmentSize too big", "[policies.a]\nMaxAttachmentSize = 4294967296\n", "p.toml:2: policies.a.MaxAttachmentSize: 4294967296 is out of range"},
		{"DevicePasswordExpiration", "[policies.a]\nDevicePasswordExpiration = -1\n", "p.toml:2: policies.a.DevicePasswordExpiration: -1 is out of range"},
		{"DevicePasswordHistory", "[policies.a]\nDevicePasswordHistory = -5\n", "p.toml:2: policies.a.DevicePasswordHistory: -5 is out of range"},
		{"MinDevicePasswordComplexCharacters", "[policies.a]\nMinDevicePasswordComplexCharacters = 5\n", "p.toml:2: policies.a.MinDevicePasswordComplexCharacters: 5 is out of range"},
		{"AllowBluetooth", "[policies.a]\nAllowBluetooth = 3\n", "p.toml:2: policies.a.AllowBluetooth: 3 is out of range"},
		{"MaxCalendarAgeFilter", "[policies.a]\nMaxCalendarAgeFilter = 3\n", "p.toml:2: policies.a.MaxCalendarAgeFilter: 3 is not allowed (0 all, 4 two weeks"},
		{"MaxEmailAgeFilter", "[policies.a]\nMaxEmailAgeFilter = 6\n", "p.toml:2: policies.a.MaxEmailAgeFilter: 6 is out of range"},
		{"MaxEmailBodyTruncationSize", "[policies.a]\nMaxEmailBodyTruncationSize = -2\n", "p.toml:2: policies.a.MaxEmailBodyTruncationSize: -2 is out of range"},
		{"MaxEmailHTMLBodyTruncationSize", "[policies.a]\nMaxEmailHTMLBodyTruncationSize = -2\n", "p.toml:2: policies.a.MaxEmailHTMLBodyTruncationSize: -2 is out of range"},
		{"RequireSignedSMIMEAlgorithm", "[policies.a]\nRequireSignedSMIMEAlgorithm = 2\n", "p.toml:2: policies.a.RequireSignedSMIMEAlgorithm: 2 is out of range (0 SHA1, 1 MD5)"},
		{"RequireEncryptionSMIMEAlgorithm", "[policies.a]\nRequireEncryptionSMIMEAlgorithm = 5\n", "p.toml:2: policies.a.RequireEncryptionSMIMEAlgorithm: 5 is out of range"},
		{"AllowSMIMEEncryptionAlgorithmNegotiation", "[policies.a]\nAllowSMIMEEncryptionAlgorithmNegotiation = 3\n", "p.toml:2: policies.a.AllowSMIMEEncryptionAlgorithmNegotiation: 3 is out of range"},
		{"empty application name", "[policies.a]\nUnapprovedInROMApplicationList = [\"ok\", \" \"]\n", "p.toml:2: policies.a.UnapprovedInROMApplicationList: item 2 is empty"},
		{"empty hash", "[policies.a]\nApprovedApplicationList = [\"\"]\n", "p.toml:2: policies.a.ApprovedApplicationList: item 1 is empty"},
		{"quoted policy name", "[policies.\"my policy\"]\nMinDevicePasswordLength = 99\n", "p.toml:2: policies.\"my policy\".MinDevicePasswordLength: 99 is out of range"},
		{"dotted key in policy", "[policies]\na.MinDevicePasswordLength = 99\n", "p.toml:2: policies.a.MinDevicePasswordLength: 99 is out of range"},
		{"unknown default_policy", "\ndefault_policy = \"strict\"\n", "p.toml:2: default_policy: no policy named \"strict\""},
		{"user to unknown policy", "[policies.a]\n[users]\n\"bob@example.com\" = \"b\"\n", "p.toml:3: users.\"bob@example.com\": no policy named \"b\""},
		{"user assigned twice", "[policies.a]\n[users]\n\"bob@example.com\" = \"a\"\n\"Bob@Example.com\" = \"a\"\n", "is assigned twice"},
		{"empty user", "[policies.a]\n[users]\n\"\" = \"a\"\n", "p.toml:3: users.\"\": user name is empty"},
		{"domain with @", "[policies.a]\n[domains]\n\"@example.com\" = \"a\"\n", "p.toml:3: domains.\"@example.com\": want a bare domain"},
		{"domain to unknown policy", "[domains]\n\"example.com\" = \"b\"\n", "p.toml:2: domains.\"example.com\": no policy named \"b\""},
		{"domain assigned twice", "[policies.a]\n[domains]\n\"example.com\" = \"a\"\n\"EXAMPLE.com\" = \"a\"\n", "is assigned twice"},
		{"bad default action", "[access]\ndefault = \"deny\"\n", "p.toml:2: access.default: unknown action \"deny\""},
		{"rule without name", "[access]\n[[access.rules]]\naction = \"block\"\nmodel = \"x\"\n", "p.toml:2: access.rules.#0: rule 1 has no name"},
		{"duplicate rule name", "[[access.rules]]\nname = \"r\"\naction = \"block\"\nmodel = \"x\"\n[[access.rules]]\nname = \"r\"\naction = \"allow\"\nmodel = \"y\"\n", "p.toml:6: access.rules.#1.name: rule name \"r\" is used twice"},
		{"bad rule action", "[[access.rules]]\nname = \"r\"\naction = \"reject\"\nmodel = \"x\"\n", "p.toml:3: access.rules.#0.action: rule \"r\": unknown action"},
		{"bad regexp", "[[access.rules]]\nname = \"r\"\naction = \"block\"\nuser_agent = \"/(unclosed/\"\n", "p.toml:4: access.rules.#0.user_agent: rule \"r\": bad regular expression"},
		{"bad glob", "[[access.rules]]\nname = \"r\"\naction = \"block\"\ndevice_type = \"SM-[G\"\n", "p.toml:4: access.rules.#0.device_type: rule \"r\": bad glob"},
		{"empty pattern", "[[access.rules]]\nname = \"r\"\naction = \"block\"\nuser = \"\"\n", "p.toml:4: access.rules.#0.user: rule \"r\": empty pattern"},
		{"rule matches everything", "[[access.rules]]\nname = \"all\"\naction = \"block\"\n", "p.toml:1: access.rules.#0: rule \"all\" matches nothing specific"},
		{"bad exempt device type", "[provisioning]\nexempt_device_types = [\"ok\", \"[\"]\n", "p.toml:2: provisioning.exempt_device_types: item 2: bad glob"},
		{"bad exempt user agent", "[provisioning]\nexempt_user_agents = [\"/(/\"]\n", "p.toml:2: provisioning.exempt_user_agents: item 1: bad regular expression"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("p.toml", []byte(tt.doc))
			if err == nil {
				t.Fatalf("no error; want %q", tt.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("error %T %v is not a *ConfigError", err, err)
			}
			if !strings.HasPrefix(err.Error(), tt.want) && !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error\n  %s\nwant it to contain\n  %s", err, tt.want)
			}
			if strings.HasPrefix(tt.want, "p.toml:") && !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("error\n  %s\nwant prefix\n  %s", err, tt.want)
			}
		})
	}
}

func TestLoadErrorNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.toml")
	if err := os.WriteFile(path, []byte("[policies.a]\nMinDevicePasswordLength = 40\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := path + ":2: policies.a.MinDevicePasswordLength: 40 is out of range"; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("err = %v, want prefix %q", err, want)
	}
}

func TestAssignmentPrecedence(t *testing.T) {
	doc := `
default_policy = "base"
[policies.base]
[policies.dom]
MinDevicePasswordLength = 4
[policies.user]
MinDevicePasswordLength = 8
[users]
"alice@example.com" = "user"
"carol" = "user"
[domains]
"example.com" = "dom"
"sub.example.org" = "user"
`
	c, err := Parse("p.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ user, want string }{
		{"alice@example.com", "user"},   // user beats domain
		{"ALICE@EXAMPLE.COM", "user"},   // case-insensitive
		{" alice@example.com ", "user"}, // trimmed
		{"bob@example.com", "dom"},      // domain
		{"bob@Example.COM", "dom"},      // domain case-insensitive
		{"bob@sub.example.com", "base"}, // no suffix matching
		{"x@sub.example.org", "user"},
		{"carol", "user"},          // bare login, exact
		{"dave", "base"},           // bare login, no domain
		{"", "base"},               // nothing
		{"a@b@example.com", "dom"}, // last @ splits
	}
	for _, tt := range tests {
		if got := c.PolicyFor(tt.user).Name; got != tt.want {
			t.Errorf("PolicyFor(%q) = %q, want %q", tt.user, got, tt.want)
		}
	}

	// Without default_policy, [policies.default] is the default…
	c, err = Parse("p.toml", []byte("[policies.default]\nMinDevicePasswordLength = 4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.PolicyFor("x@y"); p.Name != "default" || p.Settings.MinDevicePasswordLength == nil {
		t.Errorf("default = %+v", p)
	}
	// …and without that, the built-in permissive policy.
	c, err = Parse("p.toml", []byte("[policies.other]\nMinDevicePasswordLength = 4\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := c.PolicyFor("x@y"); p.Name != "default" || !reflect.DeepEqual(p.Settings, Settings{}) {
		t.Errorf("default = %+v", p)
	}
}

func TestPolicyHash(t *testing.T) {
	parse := func(doc string) *Config {
		t.Helper()
		c, err := Parse("p.toml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := parse("[policies.a]\nMinDevicePasswordLength = 4\nAllowCamera = true\n").Policy("a").Hash()
	b := parse("[policies.b]\nAllowCamera = true\nMinDevicePasswordLength = 4\n").Policy("b").Hash()
	if a != b {
		t.Error("hash depends on key order or policy name")
	}
	for _, doc := range []string{
		"[policies.a]\nMinDevicePasswordLength = 5\nAllowCamera = true\n",
		"[policies.a]\nMinDevicePasswordLength = 4\nAllowCamera = false\n",
		"[policies.a]\nMinDevicePasswordLength = 4\n",
		"[policies.a]\nMinDevicePasswordLength = 4\nAllowCamera = true\nApprovedApplicationList = []\n",
	} {
		if h := parse(doc).Policy("a").Hash(); h == a {
			t.Errorf("hash did not change for %q", doc)
		}
	}
	// allow_unapplied does not reach the phone, so it does not change the hash.
	if h := parse("[policies.a]\nallow_unapplied = true\nMinDevicePasswordLength = 4\nAllowCamera = true\n").Policy("a").Hash(); h != a {
		t.Error("allow_unapplied changed the hash")
	}
	if len(a) != 16 {
		t.Errorf("hash %q is not 16 hex digits", a)
	}
}
