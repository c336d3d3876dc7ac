package policy

import (
	"strconv"
	"strings"
)

// locator finds the line a key was written on, so that errors found after
// decoding (a value out of range, an unknown policy name) can say
// "file:line" like the TOML library's own syntax errors do. The TOML
// library keeps key positions private, so this reads the lines again: table
// headers, array-of-tables headers (counted, giving "#0", "#1", … path
// segments) and "key = value" lines. It is best effort: a key inside an
// inline table is reported at the line of the nearest enclosing key.
type locator struct {
	entries []locEntry
}

type locEntry struct {
	path []string
	line int
}

func newLocator(data []byte) *locator {
	l := &locator{}
	var header []string
	arrays := make(map[string]int)
	inMultiline := ""
	for i, raw := range strings.Split(string(data), "\n") {
		line := strings.TrimSpace(raw)
		if inMultiline != "" {
			if strings.Contains(line, inMultiline) {
				inMultiline = ""
			}
			continue
		}
		switch {
		case line == "" || line[0] == '#':
			continue
		case strings.HasPrefix(line, "[["):
			end := strings.Index(line, "]]")
			if end < 0 {
				continue
			}
			p, ok := splitKey(line[2:end])
			if !ok {
				continue
			}
			k := strings.Join(p, "\x00")
			header = append(p, "#"+strconv.Itoa(arrays[k]))
			arrays[k]++
			l.entries = append(l.entries, locEntry{header, i + 1})
			continue
		case line[0] == '[':
			end := strings.LastIndexByte(line, ']')
			if end < 0 {
				continue
			}
			p, ok := splitKey(line[1:end])
			if !ok {
				continue
			}
			header = p
			l.entries = append(l.entries, locEntry{header, i + 1})
			continue
		}
		eq := keyEnd(line)
		if eq < 0 {
			continue
		}
		p, ok := splitKey(line[:eq])
		if !ok {
			continue
		}
		full := append(append([]string(nil), header...), p...)
		l.entries = append(l.entries, locEntry{full, i + 1})
		for _, q := range []string{`"""`, `'''`} {
			if v := line[eq+1:]; strings.Count(v, q) == 1 {
				inMultiline = q
			}
		}
	}
	return l
}

// keyEnd returns the index of the "=" that ends the key of a key/value line,
// skipping quoted parts of the key, or -1.
func keyEnd(line string) int {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '=':
			return i
		}
	}
	return -1
}

// splitKey splits a dotted TOML key ("a.\"b.c\".d") into its parts.
func splitKey(s string) ([]string, bool) {
	var parts []string
	s = strings.TrimSpace(s)
	for s != "" {
		var part string
		switch s[0] {
		case '"':
			end := 1
			for end < len(s) && s[end] != '"' {
				if s[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(s) {
				return nil, false
			}
			u, err := strconv.Unquote(s[:end+1])
			if err != nil {
				return nil, false
			}
			part, s = u, s[end+1:]
		case '\'':
			end := strings.IndexByte(s[1:], '\'')
			if end < 0 {
				return nil, false
			}
			part, s = s[1:end+1], s[end+2:]
		default:
			end := strings.IndexByte(s, '.')
			if end < 0 {
				end = len(s)
			}
			part, s = strings.TrimSpace(s[:end]), s[end:]
			for _, r := range part {
				if !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '#') {
					return nil, false
				}
			}
			if part == "" {
				return nil, false
			}
		}
		parts = append(parts, part)
		s = strings.TrimSpace(s)
		if s == "" {
			break
		}
		if s[0] != '.' {
			return nil, false
		}
		s = strings.TrimSpace(s[1:])
	}
	return parts, len(parts) > 0
}

// line returns the line of a dotted key, or of its nearest written parent,
// or 0. Keys without "#n" segments (as the TOML library reports keys inside
// arrays of tables) match whatever array element comes first.
func (l *locator) line(key string) int {
	target, ok := splitKey(key)
	if !ok {
		return 0
	}
	indexed := false
	for _, t := range target {
		indexed = indexed || strings.HasPrefix(t, "#")
	}
	best, bestLen := 0, 0
	for _, e := range l.entries {
		p := e.path
		if !indexed {
			p = dropIndexes(p)
		}
		if len(p) > len(target) || len(p) <= bestLen {
			continue
		}
		if equal(p, target[:len(p)]) {
			best, bestLen = e.line, len(p)
			if bestLen == len(target) {
				break
			}
		}
	}
	return best
}

func dropIndexes(p []string) []string {
	out := make([]string, 0, len(p))
	for _, s := range p {
		if !strings.HasPrefix(s, "#") {
			out = append(out, s)
		}
	}
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
