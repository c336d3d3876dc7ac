package backend

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestUIDSetText(t *testing.T) {
	tests := []struct {
		in, want string
		len      int
	}{
		{"", "", 0},
		{"1", "1", 1},
		{"1:5,7", "1:5,7", 6},
		{"7,1:5,6", "1:7", 7},
		{"9:3", "3:9", 7},
		{"1,3,2,10:12,13", "1:3,10:13", 7},
		{"4294967295,1:4294967294", "1:4294967295", 4294967295},
		{"4294967295,4294967295", "4294967295", 1},
		{"1:2,3:4,9", "1:4,9", 5},
		{"1:3,2:5,5", "1:5", 5},
		{"5,1:3", "1:3,5", 4},
		{"10:20,1:30", "1:30", 30},
	}
	for _, tt := range tests {
		s, err := ParseUIDSet(tt.in)
		if err != nil {
			t.Fatalf("ParseUIDSet(%q): %v", tt.in, err)
		}
		if got := s.String(); got != tt.want {
			t.Errorf("ParseUIDSet(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got := s.Len(); got != tt.len {
			t.Errorf("ParseUIDSet(%q).Len() = %d, want %d", tt.in, got, tt.len)
		}
	}
	for _, bad := range []string{"0", "1:0", "*", "1:*", "a", "1,,2", "4294967296", "-1"} {
		if _, err := ParseUIDSet(bad); err == nil {
			t.Errorf("ParseUIDSet(%q) succeeded, want an error", bad)
		}
	}
}

// TestUIDSetOps checks Union, Diff, Intersect, Contains against plain maps
// on random sets.
func TestUIDSetOps(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	randSet := func() (UIDSet, map[UID]bool) {
		m := map[UID]bool{}
		var s UIDSet
		for range r.IntN(40) {
			a := UID(1 + r.IntN(60))
			b := a + UID(r.IntN(5))
			s.AddRange(a, b)
			for u := a; u <= b; u++ {
				m[u] = true
			}
		}
		return s, m
	}
	check := func(name string, got UIDSet, want func(UID) bool) {
		t.Helper()
		for i := 1; i < len(got); i++ {
			if got[i].Start <= got[i-1].Stop+1 {
				t.Fatalf("%s = %v: ranges not disjoint and apart", name, got)
			}
		}
		for u := UID(1); u < 80; u++ {
			if got.Contains(u) != want(u) {
				t.Fatalf("%s = %v: Contains(%d) = %v", name, got, u, got.Contains(u))
			}
		}
	}
	for range 500 {
		a, am := randSet()
		b, bm := randSet()
		check("a", a, func(u UID) bool { return am[u] })
		check("a∪b", a.Union(b), func(u UID) bool { return am[u] || bm[u] })
		check("a∩b", a.Intersect(b), func(u UID) bool { return am[u] && bm[u] })
		check("a−b", a.Diff(b), func(u UID) bool { return am[u] && !bm[u] })
		if got := slices.Collect(a.All()); len(got) != len(am) || a.Len() != len(am) {
			t.Fatalf("%v: All gives %d UIDs, Len %d, want %d", a, len(got), a.Len(), len(am))
		}
		// RemoveUID edits in place; the set stays disjoint and apart.
		for range 5 {
			u := UID(1 + r.IntN(70))
			a.RemoveUID(u)
			delete(am, u)
			check("a after RemoveUID", a, func(u UID) bool { return am[u] })
		}
		fwd := slices.Collect(a.All())
		back := slices.Collect(a.Backward())
		slices.Reverse(back)
		if !slices.Equal(fwd, back) || !slices.IsSorted(fwd) {
			t.Fatalf("%v: All %v and Backward %v disagree", a, fwd, back)
		}
	}
}

func TestFolderStateEdits(t *testing.T) {
	s := &FolderState{UIDValidity: 7, UIDNext: 10, Messages: 3, Window: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}
	s.SetFlags(3, []string{`\SEEN`, "$label1"})
	s.SetFlags(4, []string{`\Seen`, `\Flagged`, `\Recent`})
	s.SetFlags(5, nil)
	if got := s.UIDs.String(); got != "3:5" {
		t.Fatalf("UIDs = %q, want 3:5", got)
	}
	if got := s.FlagsOf(4); !slices.Equal(got, []string{`\Flagged`, `\Seen`}) {
		t.Fatalf("FlagsOf(4) = %q", got)
	}
	if got := s.FlagsOf(3); !slices.Equal(got, []string{`\Seen`, "$label1"}) {
		t.Fatalf("FlagsOf(3) = %q", got)
	}
	s.SetFlags(4, []string{`\Seen`})
	if got := s.Flags[`\Flagged`]; got.Len() != 0 {
		t.Fatalf(`\Flagged set = %v after clearing`, got)
	}
	c := s.Clone()
	s.Remove(3)
	if s.UIDs.Contains(3) || !c.UIDs.Contains(3) || s.Flags[`\Seen`].Contains(3) || !c.Flags[`\Seen`].Contains(3) {
		t.Fatalf("Remove touched the clone or missed the original: %+v / %+v", s, c)
	}
	c.Untrack(NewUIDSet(3, 4))
	if got := c.UIDs.String(); got != "5" {
		t.Fatalf("after Untrack UIDs = %q, want 5", got)
	}
	if len(c.Flags) != 0 {
		t.Fatalf("after Untrack Flags = %v, want none", c.Flags)
	}
	if got := c.Pending.String(); got != "3:4" {
		t.Fatalf("after Untrack Pending = %q, want 3:4", got)
	}

	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"v":7,"n":10,"m":3,"w":"2026-11-01T00:00:00Z","u":"4:5","f":{"\\Seen":"4"}}`
	if string(data) != want {
		t.Fatalf("JSON = %s\nwant   %s", data, want)
	}
	var back FolderState
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if back.UIDs.String() != "4:5" || back.Flags[`\Seen`].String() != "4" || !back.Window.Equal(s.Window) {
		t.Fatalf("round trip = %+v", back)
	}
}
