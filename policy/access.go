package policy

import (
	"fmt"
	"regexp"
	"strings"
)

// Action is what access rules decide for a device.
type Action uint8

const (
	// ActionNone means no decision. It is never returned by Config.Access;
	// in DeviceState.Access it means "no per-device override, use the rules".
	ActionNone Action = iota
	// ActionAllow lets the device sync.
	ActionAllow
	// ActionBlock refuses every command, Provision included.
	ActionBlock
	// ActionQuarantine parks the device until an administrator allows or
	// blocks it. From 14.0 it may still Provision, so that its
	// DeviceInformation (model, OS, phone number) reaches the admin API.
	ActionQuarantine
)

// String returns the name used in the policy file: "allow", "block",
// "quarantine", or "none".
func (a Action) String() string {
	switch a {
	case ActionAllow:
		return "allow"
	case ActionBlock:
		return "block"
	case ActionQuarantine:
		return "quarantine"
	}
	return "none"
}

// ParseAction parses "allow", "block" or "quarantine" (case-insensitive).
func ParseAction(s string) (Action, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "allow":
		return ActionAllow, nil
	case "block":
		return ActionBlock, nil
	case "quarantine":
		return ActionQuarantine, nil
	}
	return ActionNone, fmt.Errorf("unknown action %q (want allow, block or quarantine)", s)
}

// pattern matches one request field. Written as "/re/" it is a Go regular
// expression (RE2 syntax, unanchored, case-sensitive unless it says (?i));
// anything else is a glob matched against the whole value,
// case-insensitively, where * is any run of characters (slashes included,
// because user agents have them), ? is one character, and [...] is a class.
type pattern struct {
	src string
	re  *regexp.Regexp
}

// compilePattern compiles a rule pattern; see pattern for the syntax.
func compilePattern(src string) (*pattern, error) {
	if src == "" {
		return nil, fmt.Errorf("empty pattern (leave the key out to match anything)")
	}
	if len(src) >= 2 && strings.HasPrefix(src, "/") && strings.HasSuffix(src, "/") {
		re, err := regexp.Compile(src[1 : len(src)-1])
		if err != nil {
			return nil, fmt.Errorf("bad regular expression %s: %v", src, err)
		}
		return &pattern{src: src, re: re}, nil
	}
	re, err := globToRegexp(src)
	if err != nil {
		return nil, fmt.Errorf("bad glob %q: %v", src, err)
	}
	return &pattern{src: src, re: re}, nil
}

// globToRegexp turns a glob into an anchored, case-insensitive regexp.
func globToRegexp(glob string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString(`(?is)^`)
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '[':
			end := strings.IndexByte(glob[i+1:], ']')
			if end < 0 {
				return nil, fmt.Errorf("unclosed [")
			}
			class := glob[i+1 : i+1+end]
			if class == "" || class == "!" || class == "^" {
				return nil, fmt.Errorf("empty character class")
			}
			if class[0] == '!' {
				class = "^" + class[1:]
			}
			b.WriteString("[" + strings.ReplaceAll(class, `\`, `\\`) + "]")
			i += end + 1
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`$`)
	return regexp.Compile(b.String())
}

func (p *pattern) match(s string) bool { return p == nil || p.re.MatchString(s) }

// Rule is one access rule. A rule matches when every pattern it has matches;
// fields without a pattern match anything. Rules are tried in file order and
// the first match decides.
type Rule struct {
	Name   string
	Action Action
	// Patterns as written in the file; "" means the field is not tested.
	User, DeviceType, UserAgent, Model string

	user, deviceType, userAgent, model *pattern
}

func (r *Rule) matches(user, deviceType, userAgent, model string) bool {
	return r.user.match(user) && r.deviceType.match(deviceType) &&
		r.userAgent.match(userAgent) && r.model.match(model)
}

// Access evaluates the access rules for a device: the first matching rule
// wins and its name is returned; when none matches the default action is
// returned with an empty rule name. A field the gateway does not know yet
// (the model before DeviceInformation arrives) is matched as "".
func (c *Config) Access(user, deviceType, userAgent, model string) (Action, string) {
	for _, r := range c.rules {
		if r.matches(user, deviceType, userAgent, model) {
			return r.Action, r.Name
		}
	}
	return c.defaultAction, ""
}

// Rules returns the access rules in evaluation order.
func (c *Config) Rules() []Rule {
	out := make([]Rule, len(c.rules))
	for i, r := range c.rules {
		out[i] = *r
	}
	return out
}

// DefaultAction is the action taken when no access rule matches.
func (c *Config) DefaultAction() Action { return c.defaultAction }
