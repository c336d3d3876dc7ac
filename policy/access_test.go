package policy

import "testing"

func TestAccessRules(t *testing.T) {
	doc := `
[access]
default = "quarantine"

[[access.rules]]
name = "analyzer"
action = "block"
device_type = "TestActiveSyncConnectivity"

[[access.rules]]
name = "samsung-s2x"
action = "allow"
device_type = "SAMSUNGSM-G9[0-9]?B"
model = "SM-*"

[[access.rules]]
name = "gmail"
action = "allow"
user_agent = "Android-Mail/*"

[[access.rules]]
name = "old-eas"
action = "block"
user_agent = '/-EAS-1\.[0-9]$/'

[[access.rules]]
name = "iphones-of-staff"
action = "allow"
user = "*@example.com"
device_type = "iP[!o]*"

[[access.rules]]
name = "case-sensitive-re"
action = "allow"
model = "/^Pixel [0-9]+$/"
`
	c, err := Parse("p.toml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                               string
		user, deviceType, userAgent, model string
		want                               Action
		rule                               string
	}{
		{"exact device type", "a@x", "TestActiveSyncConnectivity", "", "", ActionBlock, "analyzer"},
		{"glob is case-insensitive", "a@x", "testactivesyncconnectivity", "", "", ActionBlock, "analyzer"},
		{"glob is whole-value", "a@x", "TestActiveSyncConnectivity2", "", "", ActionQuarantine, ""},
		{"class and ? and model", "a@x", "SAMSUNGSM-G991B", "", "SM-G991B", ActionAllow, "samsung-s2x"},
		{"all patterns must match", "a@x", "SAMSUNGSM-G991B", "", "", ActionQuarantine, ""},
		{"class excludes", "a@x", "SAMSUNGSM-GX91B", "", "SM-G991B", ActionQuarantine, ""},
		{"star crosses slashes", "a@x", "Android", "Android-Mail/2025.11.3/abc", "", ActionAllow, "gmail"},
		{"regexp unanchored", "a@x", "HTCOne", "HTCOne/4.0-EAS-1.3", "", ActionBlock, "old-eas"},
		{"regexp not matching", "a@x", "HTCOne", "HTCOne/4.0-EAS-2.0", "", ActionQuarantine, ""},
		{"user glob and negated class", "bob@example.com", "iPhone", "Apple-iPhone/1", "", ActionAllow, "iphones-of-staff"},
		{"negated class rejects", "bob@example.com", "iPod", "Apple-iPod/1", "", ActionQuarantine, ""},
		{"user glob rejects", "bob@example.org", "iPhone", "Apple-iPhone/1", "", ActionQuarantine, ""},
		{"regexp is case-sensitive", "a@x", "Pixel", "", "pixel 8", ActionQuarantine, ""},
		{"regexp matches", "a@x", "Pixel", "", "Pixel 8", ActionAllow, "case-sensitive-re"},
		{"first match wins", "bob@example.com", "TestActiveSyncConnectivity", "Android-Mail/1", "", ActionBlock, "analyzer"},
		{"default", "a@x", "", "", "", ActionQuarantine, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, rule := c.Access(tt.user, tt.deviceType, tt.userAgent, tt.model)
			if a != tt.want || rule != tt.rule {
				t.Errorf("Access = %v %q, want %v %q", a, rule, tt.want, tt.rule)
			}
		})
	}
	if got := c.Rules(); len(got) != 6 || got[1].DeviceType != "SAMSUNGSM-G9[0-9]?B" || got[1].Model != "SM-*" || got[1].UserAgent != "" {
		t.Errorf("Rules() = %+v", got)
	}
	if c.DefaultAction() != ActionQuarantine {
		t.Error("DefaultAction")
	}
}

func TestParseAction(t *testing.T) {
	for in, want := range map[string]Action{"allow": ActionAllow, " Block ": ActionBlock, "QUARANTINE": ActionQuarantine} {
		if got, err := ParseAction(in); err != nil || got != want {
			t.Errorf("ParseAction(%q) = %v, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "none", "deny"} {
		if _, err := ParseAction(in); err == nil {
			t.Errorf("ParseAction(%q) accepted", in)
		}
	}
	for a, s := range map[Action]string{ActionNone: "none", ActionAllow: "allow", ActionBlock: "block", ActionQuarantine: "quarantine"} {
		if a.String() != s {
			t.Errorf("%d.String() = %q", a, a.String())
		}
	}
}
