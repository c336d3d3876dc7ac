package devices

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestEnumText(t *testing.T) {
	for _, a := range []AccessState{AccessAllowed, AccessBlocked, AccessQuarantined, AccessApproved} {
		b, err := a.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got AccessState
		if err := got.UnmarshalText(b); err != nil || got != a || string(b) != a.String() {
			t.Errorf("access %v: round trip gave %v, %q, %v", a, got, b, err)
		}
	}
	for _, w := range []WipeState{WipeNone, WipePending, WipePendingAccountOnly, WipeAcknowledged} {
		b, err := w.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var got WipeState
		if err := got.UnmarshalText(b); err != nil || got != w || string(b) != w.String() {
			t.Errorf("wipe %v: round trip gave %v, %q, %v", w, got, b, err)
		}
	}
	if _, err := AccessState(9).MarshalText(); !errors.Is(err, ErrInvalid) {
		t.Errorf("AccessState(9).MarshalText: %v, want ErrInvalid", err)
	}
	var a AccessState
	if err := a.UnmarshalText([]byte("Blocked")); !errors.Is(err, ErrInvalid) {
		t.Errorf("UnmarshalText(Blocked): %v, want ErrInvalid", err)
	}
	if got := WipeState(7).String(); got != "WipeState(7)" {
		t.Errorf("WipeState(7).String() = %q", got)
	}
	for _, c := range []struct{ got, want string }{
		{AccessQuarantined.String(), "quarantined"},
		{AccessApproved.String(), "approved"},
		{WipePendingAccountOnly.String(), "pending-account-only"},
		{AccessState(4).String(), "AccessState(4)"},
		{fmt.Sprint(AccessState(9).MarshalText()), "[] devices: invalid argument: access state 9"},
		{fmt.Sprint(WipeState(4).MarshalText()), "[] devices: invalid argument: wipe state 4"},
		{fmt.Sprint(new(WipeState).UnmarshalText([]byte("x"))), `devices: invalid argument: wipe state "x"`},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if !WipePendingAccountOnly.Pending() || WipeAcknowledged.Pending() {
		t.Error("WipeState.Pending wrong")
	}
}

func TestDeviceJSON(t *testing.T) {
	d := Device{User: "alice", ID: "abc", Access: AccessQuarantined, Wipe: WipePending,
		FirstSeen: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Revision: 3}
	b, err := json.Marshal(&d)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"user":"alice","id":"abc","firstSeen":"2026-01-02T03:04:05.000000006Z","lastSeen":"0001-01-01T00:00:00Z","info":{},"access":"quarantined","wipe":"pending","revision":3}`
	if string(b) != want {
		t.Errorf("json:\n got %s\nwant %s", b, want)
	}
	var back Device
	if err := json.Unmarshal(b, &back); err != nil || back != d {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func TestApplyUpdate(t *testing.T) {
	now := time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
	d, changed, err := ApplyUpdate(nil, "bob", "dev1", now, func(d *Device) error {
		if d.Revision != 0 || d.User != "bob" || d.ID != "dev1" {
			t.Errorf("new record = %+v", d)
		}
		d.Type = "iPhone"
		d.Revision = 42 // ignored
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !changed || d.Revision != 1 || !d.FirstSeen.Equal(now) || !d.LastSeen.Equal(now) || d.Type != "iPhone" {
		t.Errorf("created = %+v", d)
	}
	later := now.Add(time.Hour)
	d2, changed, err := ApplyUpdate(d, "bob", "dev1", later, func(d *Device) error { d.LastSeen = later; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !changed || d2.Revision != 2 || !d2.FirstSeen.Equal(now) || !d2.LastSeen.Equal(later) || d.Revision != 1 {
		t.Errorf("updated = %+v (orig %+v)", d2, d)
	}
	d3, changed, err := ApplyUpdate(d2, "bob", "dev1", later, func(d *Device) error { d.LastSeen = later; d.Revision = 9; return nil })
	if err != nil || changed || d3 != d2 {
		t.Errorf("update changing nothing: %+v, changed %v, %v; want the record as it was", d3, changed, err)
	}
	if _, _, err := ApplyUpdate(d, "bob", "dev1", now, func(d *Device) error { d.ID = "x"; return nil }); !errors.Is(err, ErrInvalid) {
		t.Errorf("identity change: %v, want ErrInvalid", err)
	}
	stop := errors.New("stop")
	if _, _, err := ApplyUpdate(d, "bob", "dev1", now, func(*Device) error { return stop }); err != stop {
		t.Errorf("fn error: %v", err)
	}
}

func TestChecks(t *testing.T) {
	if id, err := CheckIDs("u", "AbC"); err != nil || id != "abc" {
		t.Errorf("CheckIDs = %q, %v", id, err)
	}
	for _, c := range [][2]string{{"", "d"}, {"u", ""}} {
		if _, err := CheckIDs(c[0], c[1]); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckIDs(%q, %q): %v", c[0], c[1], err)
		}
	}
	tests := []struct {
		base, next *SyncState
		ok         bool
	}{
		{nil, &SyncState{Key: 1}, true},
		{&SyncState{Key: 1}, &SyncState{Key: 2}, true},
		{nil, nil, false},
		{nil, &SyncState{}, false},
		{&SyncState{Key: 5}, &SyncState{Key: 5}, false},
	}
	for i, tt := range tests {
		id, err := CheckSyncPut("u", "AbC", tt.base, tt.next)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalid)) || (err == nil && id != "abc") {
			t.Errorf("case %d: %q, %v", i, id, err)
		}
	}
	if id, err := CheckCachedRequest("u", "AbC", RequestSync); err != nil || id != "abc" {
		t.Errorf("CheckCachedRequest = %q, %v", id, err)
	}
	for _, c := range [][3]string{{"", "d", "sync"}, {"u", "", "sync"}, {"u", "d", ""}} {
		if _, err := CheckCachedRequest(c[0], c[1], c[2]); !errors.Is(err, ErrInvalid) {
			t.Errorf("CheckCachedRequest(%q, %q, %q): %v", c[0], c[1], c[2], err)
		}
	}
	if _, err := CheckSyncPut("", "d", nil, &SyncState{Key: 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("CheckSyncPut without a user: %v", err)
	}
	for _, c := range []struct {
		key string
		ttl time.Duration
		ok  bool
	}{
		{"k", time.Second, true},
		{"", time.Second, false},
		{"k", 0, false},
		{"k", -time.Second, false},
	} {
		err := CheckCounterIncr(c.key, c.ttl)
		if (err == nil) != c.ok || (err != nil && !errors.Is(err, ErrInvalid)) {
			t.Errorf("CheckCounterIncr(%q, %v): %v", c.key, c.ttl, err)
		}
		if err := CheckCounterKey(c.key); (err == nil) != (c.key != "") {
			t.Errorf("CheckCounterKey(%q): %v", c.key, err)
		}
	}
}
