package backend

import (
	"sort"
	"strings"
)

// The IMAP system flags and common keywords EAS maps (digest §4.2).
const (
	FlagSeen      = `\Seen`      // email:Read
	FlagFlagged   = `\Flagged`   // email:Flag Status 2
	FlagAnswered  = `\Answered`  // email2:LastVerbExecuted 1/2
	FlagDeleted   = `\Deleted`   // marked for expunge
	FlagDraft     = `\Draft`     // email2:IsDraft
	FlagRecent    = `\Recent`    // session-bound; never tracked
	FlagForwarded = `$Forwarded` // email2:LastVerbExecuted 3 (RFC 5788)
)

var systemFlags = []string{FlagSeen, FlagFlagged, FlagAnswered, FlagDeleted, FlagDraft, FlagRecent}

// CanonicalFlag returns flag with a system flag's case fixed (IMAP flags
// are case-insensitive: "\SEEN" is \Seen) and $Forwarded spelled so;
// other keywords are returned as they are.
func CanonicalFlag(flag string) string {
	for _, f := range systemFlags {
		if strings.EqualFold(flag, f) {
			return f
		}
	}
	if strings.EqualFold(flag, FlagForwarded) {
		return FlagForwarded
	}
	return flag
}

// HasFlag reports whether flags contains flag, ignoring case.
func HasFlag(flags []string, flag string) bool {
	for _, f := range flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}

// sortFlags sorts flags in place: system flags first, then keywords, each
// in byte order.
func sortFlags(flags []string) {
	sort.Slice(flags, func(i, j int) bool {
		si, sj := strings.HasPrefix(flags[i], `\`), strings.HasPrefix(flags[j], `\`)
		if si != sj {
			return si
		}
		return flags[i] < flags[j]
	})
}

// NormalizeFlags returns flags canonicalised (CanonicalFlag), without
// \Recent and duplicates, sorted: the form FolderState and FlagChange use.
func NormalizeFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	seen := make(map[string]bool, len(flags))
	for _, f := range flags {
		f = CanonicalFlag(f)
		if f == FlagRecent || seen[f] {
			continue
		}
		seen[f] = true
		out = append(out, f)
	}
	sortFlags(out)
	return out
}
