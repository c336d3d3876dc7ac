package backend

import (
	"fmt"
	"iter"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// UIDRange is the UIDs from Start to Stop, both included, Start <= Stop.
type UIDRange struct {
	Start, Stop UID
}

// UIDSet is a set of UIDs kept as sorted, disjoint, non-adjacent ranges,
// so that a folder's tens of thousands of mostly consecutive UIDs take a
// few bytes. The zero value is the empty set. Its text form is IMAP's
// sequence-set syntax without "*": "1:5,7,9:12".
type UIDSet []UIDRange

// NewUIDSet returns the set of uids.
func NewUIDSet(uids ...UID) UIDSet {
	var s UIDSet
	for _, u := range uids {
		s.AddUID(u)
	}
	return s
}

// Len returns the number of UIDs in s.
func (s UIDSet) Len() int {
	n := 0
	for _, r := range s {
		n += int(r.Stop-r.Start) + 1
	}
	return n
}

// Contains reports whether uid is in s.
func (s UIDSet) Contains(uid UID) bool {
	i := sort.Search(len(s), func(i int) bool { return s[i].Stop >= uid })
	return i < len(s) && s[i].Start <= uid
}

// Max returns the largest UID in s, 0 if s is empty.
func (s UIDSet) Max() UID {
	if len(s) == 0 {
		return 0
	}
	return s[len(s)-1].Stop
}

// AddUID adds uid to s; 0 is ignored.
func (s *UIDSet) AddUID(uid UID) {
	s.AddRange(uid, uid)
}

// AddRange adds start through stop to s; a range with start 0 or start >
// stop is ignored. It works in place: adding in ascending order (as a
// FETCH or SEARCH answer comes) extends or appends the last range, and
// any other addition costs a binary search and at most one move of the
// ranges after it, so building a set of n UIDs never takes n² time.
func (s *UIDSet) AddRange(start, stop UID) {
	if start == 0 || start > stop {
		return
	}
	set := *s
	n := len(set)
	if n == 0 || uint64(start) > uint64(set[n-1].Stop)+1 {
		*s = append(set, UIDRange{start, stop})
		return
	}
	// i: the first range that ends at or after start-1 (touching or
	// overlapping the new one from the left).
	i := sort.Search(n, func(i int) bool { return uint64(set[i].Stop)+1 >= uint64(start) })
	// j: the first range that starts after stop+1 (apart on the right).
	j := i
	for j < n && uint64(set[j].Start) <= uint64(stop)+1 {
		j++
	}
	if i == j {
		*s = slices.Insert(set, i, UIDRange{start, stop})
		return
	}
	set[i].Start = min(set[i].Start, start)
	set[i].Stop = max(set[j-1].Stop, stop)
	*s = slices.Delete(set, i+1, j)
}

// RemoveUID removes uid from s, in place.
func (s *UIDSet) RemoveUID(uid UID) {
	set := *s
	i := sort.Search(len(set), func(i int) bool { return set[i].Stop >= uid })
	if i == len(set) || set[i].Start > uid {
		return
	}
	r := set[i]
	switch {
	case r.Start == r.Stop:
		*s = slices.Delete(set, i, i+1)
	case uid == r.Start:
		set[i].Start++
	case uid == r.Stop:
		set[i].Stop--
	default:
		set[i].Stop = uid - 1
		*s = slices.Insert(set, i+1, UIDRange{uid + 1, r.Stop})
	}
}

// Clone returns a copy of s that shares no memory with it.
func (s UIDSet) Clone() UIDSet {
	if s == nil {
		return nil
	}
	return append(UIDSet(nil), s...)
}

// Union returns the UIDs in s or o.
func (s UIDSet) Union(o UIDSet) UIDSet {
	var out UIDSet
	i, j := 0, 0
	for i < len(s) || j < len(o) {
		var r UIDRange
		if j >= len(o) || (i < len(s) && s[i].Start <= o[j].Start) {
			r = s[i]
			i++
		} else {
			r = o[j]
			j++
		}
		if n := len(out); n > 0 && (out[n-1].Stop == ^UID(0) || r.Start <= out[n-1].Stop+1) {
			if r.Stop > out[n-1].Stop {
				out[n-1].Stop = r.Stop
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// Intersect returns the UIDs in both s and o.
func (s UIDSet) Intersect(o UIDSet) UIDSet {
	var out UIDSet
	i, j := 0, 0
	for i < len(s) && j < len(o) {
		start := max(s[i].Start, o[j].Start)
		stop := min(s[i].Stop, o[j].Stop)
		if start <= stop {
			out = append(out, UIDRange{start, stop})
		}
		if s[i].Stop < o[j].Stop {
			i++
		} else {
			j++
		}
	}
	return out
}

// Diff returns the UIDs in s that are not in o.
func (s UIDSet) Diff(o UIDSet) UIDSet {
	var out UIDSet
	j := 0
	for _, r := range s {
		start := r.Start
		for j < len(o) && o[j].Stop < start {
			j++
		}
		k := j
		for k < len(o) && o[k].Start <= r.Stop {
			if o[k].Start > start {
				out = append(out, UIDRange{start, o[k].Start - 1})
			}
			if o[k].Stop >= r.Stop {
				start = 0 // nothing left of r
				break
			}
			start = o[k].Stop + 1
			k++
		}
		if start != 0 {
			out = append(out, UIDRange{start, r.Stop})
		}
	}
	return out
}

// All returns the UIDs of s in ascending order.
func (s UIDSet) All() iter.Seq[UID] {
	return func(yield func(UID) bool) {
		for _, r := range s {
			for u := r.Start; ; u++ {
				if !yield(u) {
					return
				}
				if u == r.Stop {
					break
				}
			}
		}
	}
}

// Backward returns the UIDs of s in descending order (newest first, the
// order Sync sends Adds in).
func (s UIDSet) Backward() iter.Seq[UID] {
	return func(yield func(UID) bool) {
		for i := len(s) - 1; i >= 0; i-- {
			for u := s[i].Stop; ; u-- {
				if !yield(u) {
					return
				}
				if u == s[i].Start {
					break
				}
			}
		}
	}
}

// String returns s in IMAP sequence-set syntax, "" for the empty set.
func (s UIDSet) String() string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(uint64(r.Start), 10))
		if r.Stop != r.Start {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(uint64(r.Stop), 10))
		}
	}
	return b.String()
}

// ParseUIDSet parses IMAP sequence-set syntax without "*" ("1:5,7"; a
// range may be written high:low). The empty string is the empty set.
func ParseUIDSet(text string) (UIDSet, error) {
	var s UIDSet
	sorted := true // ranges so far came sorted and apart, as String writes them
	for rest := text; rest != ""; {
		var part string
		part, rest, _ = strings.Cut(rest, ",")
		lo, hi, isRange := strings.Cut(part, ":")
		a, err := parseUID(lo)
		if err != nil {
			return nil, fmt.Errorf("backend: UID set %q: %w", text, err)
		}
		b := a
		if isRange {
			if b, err = parseUID(hi); err != nil {
				return nil, fmt.Errorf("backend: UID set %q: %w", text, err)
			}
		}
		if a > b {
			a, b = b, a
		}
		if n := len(s); n > 0 && uint64(a) <= uint64(s[n-1].Stop)+1 {
			sorted = false
		}
		s = append(s, UIDRange{a, b})
	}
	if sorted {
		return s, nil
	}
	// Sort and merge: O(n log n) however the ranges were written.
	sort.Slice(s, func(i, j int) bool { return s[i].Start < s[j].Start })
	out := s[:1]
	for _, r := range s[1:] {
		last := &out[len(out)-1]
		if uint64(r.Start) <= uint64(last.Stop)+1 {
			last.Stop = max(last.Stop, r.Stop)
			continue
		}
		out = append(out, r)
	}
	return out, nil
}

func parseUID(text string) (UID, error) {
	n, err := strconv.ParseUint(text, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("bad UID %q", text)
	}
	if n == 0 {
		return 0, fmt.Errorf("UID 0")
	}
	return UID(n), nil
}

// MarshalText implements encoding.TextMarshaler.
func (s UIDSet) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *UIDSet) UnmarshalText(text []byte) error {
	set, err := ParseUIDSet(string(text))
	if err != nil {
		return err
	}
	*s = set
	return nil
}
