package policy

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// DefaultPolicyName is the name of the policy used when no user or domain
// assignment matches and the file sets no default_policy. Unless the file
// defines [policies.default] it is the built-in permissive policy.
const DefaultPolicyName = "default"

// defaultExemptDeviceTypes are the device types never asked to provision when
// the file does not list its own: Outlook 2013/2016 desktop (DeviceType
// WindowsOutlook) never sends Provision, so demanding it locks Outlook out.
var defaultExemptDeviceTypes = []string{"WindowsOutlook"}

// Policy is one named set of EASProvisionDoc settings.
type Policy struct {
	// Name is the policy's key in the file ([policies.<name>]).
	Name string
	// Settings are the values sent to phones.
	Settings Settings
	// AllowUnapplied accepts a phase-2 acknowledgement whose Status is 2
	// (partially applied), 3 (not applied) or 4 (externally managed) as if
	// it were 1. When false such a device gets policy Status 4 and no key.
	AllowUnapplied bool

	hash string
}

// Hash identifies the policy's settings. A final policy key is stored with
// the hash it was issued for; when the hash of the device's policy changes
// (the file was edited, or the user was moved to another policy) the key
// becomes stale and the device is sent through Provision again (Status 143).
func (p *Policy) Hash() string { return p.hash }

// Config is a loaded, validated policy file. It is immutable; reloading
// builds a new Config (see Holder).
type Config struct {
	// File is the path the config was loaded from ("" for Default).
	File string

	required      bool
	exemptTypes   []*pattern
	exemptAgents  []*pattern
	policies      map[string]*Policy
	defaultPolicy *Policy
	permissive    *Policy
	users         map[string]*Policy
	domains       map[string]*Policy
	rules         []*Rule
	defaultAction Action
}

// Default returns the configuration used when no policy file is given:
// provisioning required, one permissive policy for everybody, Outlook
// desktop exempt, every device allowed.
func Default() *Config {
	c, err := parse("", nil)
	if err != nil {
		// An empty document only uses built-in values, which are valid;
		// reaching this is a bug in this package, not bad input.
		panic("policy: built-in defaults do not validate: " + err.Error())
	}
	return c
}

// Load reads and validates a policy file. Errors are *ConfigError values
// naming the file and, where it can be found, the line.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return parse(path, data)
}

// Parse validates a policy document held in memory; name is used in error
// messages and as Config.File.
func Parse(name string, data []byte) (*Config, error) { return parse(name, data) }

// ConfigError is a problem in a policy file.
type ConfigError struct {
	File string // path of the file
	Line int    // 1-based line, 0 when unknown
	Key  string // dotted key the problem is at, "" when not tied to a key
	Msg  string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.File == "" {
		b.WriteString("policy file")
	}
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// fileConfig is the TOML document as written.
type fileConfig struct {
	DefaultPolicy string                `toml:"default_policy"`
	Provisioning  fileProvisioning      `toml:"provisioning"`
	Policies      map[string]filePolicy `toml:"policies"`
	Users         map[string]string     `toml:"users"`
	Domains       map[string]string     `toml:"domains"`
	Access        fileAccess            `toml:"access"`
}

type fileProvisioning struct {
	Required          *bool     `toml:"required"`
	ExemptDeviceTypes *[]string `toml:"exempt_device_types"`
	ExemptUserAgents  []string  `toml:"exempt_user_agents"`
}

type filePolicy struct {
	AllowUnapplied bool `toml:"allow_unapplied"`
	Settings
}

type fileAccess struct {
	Default string     `toml:"default"`
	Rules   []fileRule `toml:"rules"`
}

type fileRule struct {
	Name       string  `toml:"name"`
	Action     string  `toml:"action"`
	User       *string `toml:"user"`
	DeviceType *string `toml:"device_type"`
	UserAgent  *string `toml:"user_agent"`
	Model      *string `toml:"model"`
}

var decodeErrRe = regexp.MustCompile(`^toml: line (\d+) \(last key ("(?:[^"\\]|\\.)*")\): (.*)$`)

// parse decodes and validates; it is Load without the file read.
func parse(name string, data []byte) (*Config, error) {
	var fc fileConfig
	md, err := toml.Decode(string(data), &fc)
	loc := newLocator(data)
	fail := func(line int, key, format string, args ...any) error {
		if line == 0 && key != "" {
			line = loc.line(key)
		}
		return &ConfigError{File: name, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)}
	}
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, fail(pe.Position.Line, pe.LastKey, "%s", pe.Message)
		}
		// Type mismatches come as plain errors of the form
		// `toml: line N (last key "k"): message`.
		if m := decodeErrRe.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			key, _ := strconv.Unquote(m[2])
			return nil, fail(line, key, "%s", m[3])
		}
		return nil, fail(0, "", "%s", strings.TrimPrefix(err.Error(), "toml: "))
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fail(0, und[0].String(), "unknown key")
	}

	c := &Config{
		File:          name,
		required:      true,
		policies:      make(map[string]*Policy),
		users:         make(map[string]*Policy),
		domains:       make(map[string]*Policy),
		defaultAction: ActionAllow,
		permissive:    newPolicy(DefaultPolicyName, Settings{}, true),
	}

	// [provisioning]
	if fc.Provisioning.Required != nil {
		c.required = *fc.Provisioning.Required
	}
	exemptTypes := defaultExemptDeviceTypes
	if fc.Provisioning.ExemptDeviceTypes != nil {
		exemptTypes = *fc.Provisioning.ExemptDeviceTypes
	}
	for i, src := range exemptTypes {
		p, err := compilePattern(src)
		if err != nil {
			return nil, fail(0, "provisioning.exempt_device_types", "item %d: %v", i+1, err)
		}
		c.exemptTypes = append(c.exemptTypes, p)
	}
	for i, src := range fc.Provisioning.ExemptUserAgents {
		p, err := compilePattern(src)
		if err != nil {
			return nil, fail(0, "provisioning.exempt_user_agents", "item %d: %v", i+1, err)
		}
		c.exemptAgents = append(c.exemptAgents, p)
	}

	// [policies.*], in name order so the first error is deterministic.
	for _, n := range sortedKeys(fc.Policies) {
		fp := fc.Policies[n]
		key := "policies." + toml.Key{n}.String()
		if strings.TrimSpace(n) == "" {
			return nil, fail(0, key, "policy name is empty")
		}
		if err := fp.Settings.Validate(); err != nil {
			var se *settingError
			if errors.As(err, &se) {
				return nil, fail(0, key+"."+se.setting, "%s", se.msg)
			}
			return nil, fail(0, key, "%v", err)
		}
		c.policies[n] = newPolicy(n, fp.Settings, fp.AllowUnapplied)
	}

	// default_policy
	switch {
	case fc.DefaultPolicy != "":
		p, ok := c.policies[fc.DefaultPolicy]
		if !ok {
			return nil, fail(0, "default_policy", "no policy named %q (define [policies.%s])", fc.DefaultPolicy, fc.DefaultPolicy)
		}
		c.defaultPolicy = p
	case c.policies[DefaultPolicyName] != nil:
		c.defaultPolicy = c.policies[DefaultPolicyName]
	default:
		c.defaultPolicy = c.permissive
	}

	// [users] and [domains]
	for _, user := range sortedKeys(fc.Users) {
		pn := fc.Users[user]
		key := "users." + toml.Key{user}.String()
		u := strings.ToLower(strings.TrimSpace(user))
		if u == "" {
			return nil, fail(0, key, "user name is empty")
		}
		p, ok := c.policies[pn]
		if !ok {
			return nil, fail(0, key, "no policy named %q", pn)
		}
		if _, dup := c.users[u]; dup {
			return nil, fail(0, key, "user %q is assigned twice (names are case-insensitive)", u)
		}
		c.users[u] = p
	}
	for _, domain := range sortedKeys(fc.Domains) {
		pn := fc.Domains[domain]
		key := "domains." + toml.Key{domain}.String()
		d := strings.ToLower(strings.TrimSpace(domain))
		if d == "" || strings.Contains(d, "@") {
			return nil, fail(0, key, "want a bare domain such as example.com")
		}
		p, ok := c.policies[pn]
		if !ok {
			return nil, fail(0, key, "no policy named %q", pn)
		}
		if _, dup := c.domains[d]; dup {
			return nil, fail(0, key, "domain %q is assigned twice (names are case-insensitive)", d)
		}
		c.domains[d] = p
	}

	// [access]
	if fc.Access.Default != "" {
		a, err := ParseAction(fc.Access.Default)
		if err != nil {
			return nil, fail(0, "access.default", "%v", err)
		}
		c.defaultAction = a
	}
	seen := make(map[string]bool)
	for i, fr := range fc.Access.Rules {
		key := fmt.Sprintf("access.rules.#%d", i)
		r := &Rule{Name: fr.Name}
		if fr.Name == "" {
			return nil, fail(0, key, "rule %d has no name", i+1)
		}
		if seen[fr.Name] {
			return nil, fail(0, key+".name", "rule name %q is used twice", fr.Name)
		}
		seen[fr.Name] = true
		if r.Action, err = ParseAction(fr.Action); err != nil {
			return nil, fail(0, key+".action", "rule %q: %v", fr.Name, err)
		}
		for _, m := range []struct {
			field string
			src   *string
			text  *string
			dst   **pattern
		}{
			{"user", fr.User, &r.User, &r.user},
			{"device_type", fr.DeviceType, &r.DeviceType, &r.deviceType},
			{"user_agent", fr.UserAgent, &r.UserAgent, &r.userAgent},
			{"model", fr.Model, &r.Model, &r.model},
		} {
			if m.src == nil {
				continue
			}
			p, err := compilePattern(*m.src)
			if err != nil {
				return nil, fail(0, key+"."+m.field, "rule %q: %v", fr.Name, err)
			}
			*m.text, *m.dst = *m.src, p
		}
		if r.user == nil && r.deviceType == nil && r.userAgent == nil && r.model == nil {
			return nil, fail(0, key, "rule %q matches nothing specific: give user, device_type, user_agent or model (use access.default for everyone)", fr.Name)
		}
		c.rules = append(c.rules, r)
	}
	return c, nil
}

// sortedKeys returns the keys of m in order, so that the first error
// reported for a file does not depend on map iteration.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func newPolicy(name string, s Settings, allowUnapplied bool) *Policy {
	p := &Policy{Name: name, Settings: s, AllowUnapplied: allowUnapplied}
	p.hash = s.hash()
	return p
}

// PolicyFor returns the policy assigned to a user: an exact user entry wins
// over the user's domain (the part after the last "@"), which wins over the
// default policy. Matching is case-insensitive. user is the login as the
// gateway authenticated it, after DOMAIN\user has been normalised.
func (c *Config) PolicyFor(user string) *Policy {
	u := strings.ToLower(strings.TrimSpace(user))
	if p, ok := c.users[u]; ok {
		return p
	}
	if at := strings.LastIndexByte(u, '@'); at >= 0 {
		if p, ok := c.domains[u[at+1:]]; ok {
			return p
		}
	}
	return c.defaultPolicy
}

// Policy returns the named policy, or nil.
func (c *Config) Policy(name string) *Policy { return c.policies[name] }

// Policies returns the policies defined in the file, sorted by name. The
// built-in permissive default is not included unless the file defines it.
func (c *Config) Policies() []*Policy {
	out := make([]*Policy, 0, len(c.policies))
	for _, p := range c.policies {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// DefaultPolicy is the policy of users with no user or domain assignment.
func (c *Config) DefaultPolicy() *Policy { return c.defaultPolicy }

// ProvisioningRequired reports whether devices must provision before they
// sync ([provisioning] required, default true). When false ("bring your own
// device" mode) the gate never asks for a policy key and a device that
// provisions anyway is sent the permissive policy.
func (c *Config) ProvisioningRequired() bool { return c.required }

// Exempt reports whether a device is never asked to provision, by its
// DeviceType ([provisioning] exempt_device_types, default WindowsOutlook) or
// its User-Agent (exempt_user_agents).
func (c *Config) Exempt(deviceType, userAgent string) bool {
	for _, p := range c.exemptTypes {
		if p.match(deviceType) {
			return true
		}
	}
	for _, p := range c.exemptAgents {
		if p.match(userAgent) {
			return true
		}
	}
	return false
}

// provisionPolicy is the policy a device is sent in Provision: the user's
// policy, or the permissive one when provisioning is off.
func (c *Config) provisionPolicy(user string) *Policy {
	if !c.required {
		return c.permissive
	}
	return c.PolicyFor(user)
}
