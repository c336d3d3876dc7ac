// Package storetest is the conformance suite every devices.Store
// implementation runs, so that redisstore and boltstore keep exactly the same
// semantics: device records, the SyncKey compare-and-set (MS-ASCMD
// 2.2.3.166.4), cached requests, auth-failure counters and the forgetting of
// a device with all its state.
package storetest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/easgate/easgate/devices"
)

// NewStore makes an empty store for one subtest or benchmark. now is the
// clock the store must use for everything it timestamps or expires
// (FirstSeen, LastSeen, SyncState.Updated, auth-counter expiry), so that the
// suite can move time forward without sleeping. The factory closes the
// store in tb.Cleanup.
type NewStore func(tb testing.TB, now func() time.Time) devices.Store

// Run runs the whole suite against stores made by newStore.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s devices.Store, c *Clock)
	}{
		{"DeviceCRUD", testDeviceCRUD},
		{"DeviceAllFields", testDeviceAllFields},
		{"DeviceIDCase", testDeviceIDCase},
		{"ListDevices", testListDevices},
		{"ListAllUnderChurn", testListAllUnderChurn},
		{"InvalidArguments", testInvalidArguments},
		{"ConcurrentUpsert", testConcurrentUpsert},
		{"SyncKeyChain", testSyncKeyChain},
		{"SyncStateData", testSyncStateData},
		{"SyncStateConcurrentAdvance", testSyncConcurrentAdvance},
		{"SyncCollections", testSyncCollections},
		{"DeleteSyncStates", testDeleteSyncStates},
		{"CachedRequests", testCachedRequests},
		{"AuthFailures", testAuthFailures},
		{"AuthFailuresExpiry", testAuthFailuresExpiry},
		{"DeleteDevice", testDeleteDevice},
		{"AwkwardNames", testAwkwardNames},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewClock(time.Now())
			s := newStore(t, c.Now)
			tt.fn(t, s, c)
		})
	}
}

// Clock is a manual clock for stores under test.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock showing start (in UTC, without monotonic reading).
func NewClock(start time.Time) *Clock { return &Clock{now: start.UTC().Round(0)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var ctx = context.Background()

func mustUpsert(t *testing.T, s devices.Store, user, id string, fn func(*devices.Device)) *devices.Device {
	t.Helper()
	d, err := s.UpsertDevice(ctx, user, id, func(d *devices.Device) error {
		if fn != nil {
			fn(d)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("UpsertDevice(%q, %q): %v", user, id, err)
	}
	return d
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sameDevice(t *testing.T, what string, got, want *devices.Device) {
	t.Helper()
	if g, w := jsonOf(t, got), jsonOf(t, want); g != w {
		t.Errorf("%s:\n got %s\nwant %s", what, g, w)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error %v, want %v", what, err, want)
	}
}

func testDeviceCRUD(t *testing.T, s devices.Store, c *Clock) {
	_, err := s.GetDevice(ctx, "alice", "dev1")
	wantErr(t, "GetDevice of unknown device", err, devices.ErrNotFound)

	called := false
	_, err = s.UpdateDevice(ctx, "alice", "dev1", func(*devices.Device) error { called = true; return nil })
	wantErr(t, "UpdateDevice of unknown device", err, devices.ErrNotFound)
	if called {
		t.Error("UpdateDevice called fn for a device that does not exist")
	}

	created := c.Now()
	d := mustUpsert(t, s, "alice", "dev1", func(d *devices.Device) {
		if d.Revision != 0 || d.User != "alice" || d.ID != "dev1" || !d.FirstSeen.IsZero() {
			t.Errorf("UpsertDevice handed fn %+v for a new device", d)
		}
		d.Type = "iPhone"
		d.Revision = 99 // the store owns it
	})
	want := &devices.Device{User: "alice", ID: "dev1", Type: "iPhone", FirstSeen: created, LastSeen: created, Revision: 1}
	sameDevice(t, "created", d, want)
	got, err := s.GetDevice(ctx, "alice", "dev1")
	if err != nil {
		t.Fatal(err)
	}
	sameDevice(t, "GetDevice after create", got, want)

	c.Advance(time.Minute)
	later := c.Now()
	d = mustUpsert(t, s, "alice", "dev1", func(d *devices.Device) {
		if d.Revision != 1 || d.Type != "iPhone" {
			t.Errorf("UpsertDevice handed fn %+v for a stored device", d)
		}
		d.LastSeen = later
		d.ProtocolVersion = "16.1"
	})
	want.LastSeen, want.ProtocolVersion, want.Revision = later, "16.1", 2
	sameDevice(t, "upserted", d, want)

	d, err = s.UpdateDevice(ctx, "alice", "dev1", func(d *devices.Device) error {
		d.Access, d.AccessReason = devices.AccessBlocked, "lost phone"
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want.Access, want.AccessReason, want.Revision = devices.AccessBlocked, "lost phone", 3
	sameDevice(t, "updated", d, want)

	// An update that changes nothing writes nothing.
	d, err = s.UpdateDevice(ctx, "alice", "dev1", func(d *devices.Device) error {
		d.Access = devices.AccessBlocked
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sameDevice(t, "update changing nothing", d, want)

	stop := errors.New("stop")
	_, err = s.UpdateDevice(ctx, "alice", "dev1", func(d *devices.Device) error { d.Type = "changed"; return stop })
	if err != stop {
		t.Errorf("UpdateDevice with failing fn: %v, want the fn's error", err)
	}
	_, err = s.UpdateDevice(ctx, "alice", "dev1", func(d *devices.Device) error { d.User = "mallory"; return nil })
	wantErr(t, "UpdateDevice changing the user", err, devices.ErrInvalid)
	_, err = s.UpsertDevice(ctx, "alice", "dev2", func(d *devices.Device) error { d.ID = "dev3"; return nil })
	wantErr(t, "UpsertDevice changing the id", err, devices.ErrInvalid)
	_, err = s.GetDevice(ctx, "alice", "dev2")
	wantErr(t, "GetDevice after refused create", err, devices.ErrNotFound)

	got, err = s.GetDevice(ctx, "alice", "dev1")
	if err != nil {
		t.Fatal(err)
	}
	sameDevice(t, "GetDevice after refused updates", got, want)
}

func testDeviceAllFields(t *testing.T, s devices.Store, c *Clock) {
	t0 := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
	fill := func(d *devices.Device) {
		d.Type = "SAMSUNGSMG991B"
		d.UserAgent = "Android-Mail/2025.11"
		d.ProtocolVersion = "14.1"
		d.FirstSeen = t0
		d.LastSeen = t0.Add(time.Hour)
		d.Info = devices.DeviceInfo{
			Model: "SM-G991B", IMEI: "356938035643809", FriendlyName: "Alice's phone",
			OS: "Android 14", OSLanguage: "de-DE", PhoneNumber: "+49 30 1234567",
			UserAgent: "Samsung/1.0", MobileOperator: "Telekom.de", EnableOutboundSMS: true,
		}
		d.PolicyName = "default"
		d.PolicyKey = 4294967295
		d.PendingPolicyKey = 1234567890
		d.PolicyStatus = 2
		d.Access = devices.AccessQuarantined
		d.AccessReason = "new device"
		d.Wipe = devices.WipeAcknowledged
		d.WipeRequested = t0.Add(2 * time.Hour)
		d.WipeAcknowledged = t0.Add(3 * time.Hour)
		d.WipeStatus = 1
	}
	d := mustUpsert(t, s, "alice@example.org", "AndroidC1234", fill)
	want := &devices.Device{User: "alice@example.org", ID: "androidc1234", Revision: 1}
	fill(want)
	sameDevice(t, "created", d, want)
	got, err := s.GetDevice(ctx, "alice@example.org", "androidc1234")
	if err != nil {
		t.Fatal(err)
	}
	sameDevice(t, "GetDevice", got, want)
	if !got.FirstSeen.Equal(t0) {
		t.Errorf("FirstSeen %v, want %v to the nanosecond", got.FirstSeen, t0)
	}
}

func testDeviceIDCase(t *testing.T, s devices.Store, c *Clock) {
	d := mustUpsert(t, s, "Bob", "ApplE4F2ab", nil)
	if d.ID != "apple4f2ab" {
		t.Errorf("stored id %q, want lower case", d.ID)
	}
	for _, id := range []string{"apple4f2ab", "APPLE4F2AB", "aPpLe4f2Ab"} {
		got, err := s.GetDevice(ctx, "Bob", id)
		if err != nil || got.ID != "apple4f2ab" {
			t.Errorf("GetDevice(%q) = %+v, %v", id, got, err)
		}
	}
	d = mustUpsert(t, s, "Bob", "APPLE4F2AB", func(d *devices.Device) { d.Type = "iPad" })
	if d.Revision != 2 {
		t.Errorf("upsert with other case made revision %d, want 2 (same record)", d.Revision)
	}
	// User names are case-sensitive: the gateway normalises them.
	if _, err := s.GetDevice(ctx, "bob", "apple4f2ab"); !errors.Is(err, devices.ErrNotFound) {
		t.Errorf("GetDevice with user in other case: %v, want ErrNotFound", err)
	}
	list, err := s.ListDevices(ctx, "Bob")
	if err != nil || len(list) != 1 {
		t.Errorf("ListDevices = %d devices, %v; want 1", len(list), err)
	}
}

func ids(list []*devices.Device) []string {
	var out []string
	for _, d := range list {
		out = append(out, d.User+"/"+d.ID)
	}
	return out
}

func testListDevices(t *testing.T, s devices.Store, c *Clock) {
	all, err := s.ListDevices(ctx, "")
	if err != nil || len(all) != 0 {
		t.Fatalf("ListDevices of empty store = %v, %v", ids(all), err)
	}
	for _, p := range [][2]string{{"carol", "z9"}, {"alice", "b"}, {"bob", "x"}, {"alice", "a"}, {"alice", "C"}} {
		mustUpsert(t, s, p[0], p[1], func(d *devices.Device) { d.Type = "type of " + p[0] + "/" + p[1] })
	}
	tests := []struct {
		user string
		want []string
	}{
		{"", []string{"alice/a", "alice/b", "alice/c", "bob/x", "carol/z9"}},
		{"alice", []string{"alice/a", "alice/b", "alice/c"}},
		{"bob", []string{"bob/x"}},
		{"dave", nil},
	}
	for _, tt := range tests {
		list, err := s.ListDevices(ctx, tt.user)
		if err != nil {
			t.Fatalf("ListDevices(%q): %v", tt.user, err)
		}
		if got := ids(list); !slices.Equal(got, tt.want) {
			t.Errorf("ListDevices(%q) = %v, want %v", tt.user, got, tt.want)
		}
		for _, d := range list {
			if !strings.EqualFold(d.Type, "type of "+d.User+"/"+d.ID) || d.Revision != 1 {
				t.Errorf("listed record %+v is not the stored one", d)
			}
		}
	}
	if err := s.DeleteDevice(ctx, "bob", "x"); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListDevices(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(list), []string{"alice/a", "alice/b", "alice/c", "carol/z9"}; !slices.Equal(got, want) {
		t.Errorf("ListDevices after delete = %v, want %v", got, want)
	}
	mustUpsert(t, s, "bob", "y", nil)
	list, err = s.ListDevices(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(list), []string{"alice/a", "alice/b", "alice/c", "bob/y", "carol/z9"}; !slices.Equal(got, want) {
		t.Errorf("ListDevices after re-adding a user = %v, want %v", got, want)
	}
}

// testListAllUnderChurn deletes a user's only device while another device of
// the same user is being created: the new device must be listed by
// ListDevices(""), whichever order the two took (redisstore keeps the set
// of users outside the user's Cluster slot).
func testListAllUnderChurn(t *testing.T, s devices.Store, c *Clock) {
	mustUpsert(t, s, "churn", "d0", nil)
	for i := range 20 {
		var wg sync.WaitGroup
		var delErr, addErr error
		wg.Go(func() { delErr = s.DeleteDevice(ctx, "churn", fmt.Sprint("d", i)) })
		wg.Go(func() {
			_, addErr = s.UpsertDevice(ctx, "churn", fmt.Sprint("d", i+1), func(*devices.Device) error { return nil })
		})
		wg.Wait()
		if delErr != nil || addErr != nil {
			t.Fatalf("round %d: delete %v, create %v", i, delErr, addErr)
		}
		all, err := s.ListDevices(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if got, want := ids(all), []string{fmt.Sprint("churn/d", i+1)}; !slices.Equal(got, want) {
			t.Fatalf("round %d: ListDevices(\"\") = %q, want %q", i, got, want)
		}
	}
}

func testInvalidArguments(t *testing.T, s devices.Store, c *Clock) {
	nop := func(*devices.Device) error { return nil }
	st := &devices.SyncState{Key: 1}
	for _, p := range [][2]string{{"", "dev"}, {"user", ""}} {
		u, d := p[0], p[1]
		calls := map[string]error{}
		_, calls["GetDevice"] = s.GetDevice(ctx, u, d)
		_, calls["UpsertDevice"] = s.UpsertDevice(ctx, u, d, nop)
		_, calls["UpdateDevice"] = s.UpdateDevice(ctx, u, d, nop)
		calls["DeleteDevice"] = s.DeleteDevice(ctx, u, d)
		_, calls["GetSyncState"] = s.GetSyncState(ctx, u, d, "c", 1)
		_, calls["LatestSyncState"] = s.LatestSyncState(ctx, u, d, "c")
		calls["PutSyncState"] = s.PutSyncState(ctx, u, d, "c", nil, st)
		calls["DeleteSyncStates"] = s.DeleteSyncStates(ctx, u, d, "c")
		_, calls["SyncCollections"] = s.SyncCollections(ctx, u, d)
		calls["PutCachedRequest"] = s.PutCachedRequest(ctx, u, d, devices.RequestSync, []byte("x"))
		_, calls["GetCachedRequest"] = s.GetCachedRequest(ctx, u, d, devices.RequestSync)
		for name, err := range calls {
			wantErr(t, fmt.Sprintf("%s(%q, %q)", name, u, d), err, devices.ErrInvalid)
		}
	}
	wantErr(t, "PutSyncState with key 0", s.PutSyncState(ctx, "u", "d", "c", nil, &devices.SyncState{}), devices.ErrInvalid)
	wantErr(t, "PutSyncState with nil state", s.PutSyncState(ctx, "u", "d", "c", nil, nil), devices.ErrInvalid)
	_, err := s.IncrAuthFailures(ctx, "", time.Minute)
	wantErr(t, "IncrAuthFailures with empty key", err, devices.ErrInvalid)
	_, err = s.IncrAuthFailures(ctx, "k", 0)
	wantErr(t, "IncrAuthFailures with ttl 0", err, devices.ErrInvalid)
	wantErr(t, "PutCachedRequest with empty kind", s.PutCachedRequest(ctx, "u", "d", "", []byte("x")), devices.ErrInvalid)
	if _, err := s.SyncCollections(ctx, "u", "d"); err != nil {
		t.Errorf("refused calls left state behind or broke the store: %v", err)
	}
}

func testConcurrentUpsert(t *testing.T, s devices.Store, c *Clock) {
	const workers, each = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Go(func() {
			for range each {
				_, err := s.UpsertDevice(ctx, "alice", "dev", func(d *devices.Device) error {
					d.PolicyStatus++ // a read-modify-write that loses counts unless atomic
					return nil
				})
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("UpsertDevice: %v", err)
		}
	}
	d, err := s.GetDevice(ctx, "alice", "dev")
	if err != nil {
		t.Fatal(err)
	}
	if d.PolicyStatus != workers*each || d.Revision != workers*each {
		t.Errorf("after %d concurrent increments: count %d, revision %d", workers*each, d.PolicyStatus, d.Revision)
	}
}

// syncStep is one operation of testSyncKeyChain.
type syncStep struct {
	name string
	// base: the key to load the base state by (GetSyncState), 0 for a
	// reset, or -1 to reuse the base loaded in step baseFrom.
	base     int64
	baseFrom int
	next     uint64
	data     string
	err      error
	// After the step: the keys that must load, with their data, and the
	// keys that must not.
	have    map[uint64]string
	missing []uint64
	latest  uint64
}

func testSyncKeyChain(t *testing.T, s devices.Store, c *Clock) {
	const u, dev, coll = "alice", "dev", "5"
	steps := []syncStep{
		{name: "prime with SyncKey 0", base: 0, next: 1, data: "one",
			have: map[uint64]string{1: "one"}, missing: []uint64{2}, latest: 1},
		{name: "advance 1 to 2", base: 1, next: 2, data: "two",
			have: map[uint64]string{1: "one", 2: "two"}, latest: 2},
		{name: "client repeats 1: rewind, 2 is rewritten", base: 1, next: 2, data: "two again",
			have: map[uint64]string{1: "one", 2: "two again"}, latest: 2},
		{name: "client repeats 1 again, store a different key", base: 1, next: 7, data: "seven",
			have: map[uint64]string{1: "one", 7: "seven"}, missing: []uint64{2}, latest: 7},
		{name: "advance 7 to 8", base: 7, next: 8, data: "eight",
			have: map[uint64]string{7: "seven", 8: "eight"}, missing: []uint64{1, 2}, latest: 8},
		{name: "stale base from step 2 (key 1) conflicts", base: -1, baseFrom: 2, next: 9, data: "x", err: devices.ErrConflict,
			have: map[uint64]string{7: "seven", 8: "eight"}, missing: []uint64{1, 9}, latest: 8},
		{name: "stale base from step 4 (key 7, now previous) conflicts", base: -1, baseFrom: 4, next: 9, data: "x", err: devices.ErrConflict,
			have: map[uint64]string{7: "seven", 8: "eight"}, missing: []uint64{9}, latest: 8},
		{name: "next key equal to base key is refused", base: 8, next: 8, data: "x", err: devices.ErrInvalid,
			have: map[uint64]string{7: "seven", 8: "eight"}, latest: 8},
		{name: "advance 8 to 9", base: 8, next: 9, data: "nine",
			have: map[uint64]string{8: "eight", 9: "nine"}, missing: []uint64{7}, latest: 9},
		{name: "reset with SyncKey 0 forgets both", base: 0, next: 1, data: "fresh",
			have: map[uint64]string{1: "fresh"}, missing: []uint64{8, 9}, latest: 1},
		{name: "base read before the reset conflicts", base: -1, baseFrom: 8, next: 10, data: "x", err: devices.ErrConflict,
			have: map[uint64]string{1: "fresh"}, missing: []uint64{8, 9, 10}, latest: 1},
		{name: "advance after reset", base: 1, next: 2, data: "fresh two",
			have: map[uint64]string{1: "fresh", 2: "fresh two"}, latest: 2},
	}
	bases := make([]*devices.SyncState, len(steps))
	for i, st := range steps {
		var base *devices.SyncState
		switch {
		case st.base > 0:
			b, err := s.GetSyncState(ctx, u, dev, coll, uint64(st.base))
			if err != nil {
				t.Fatalf("step %d (%s): GetSyncState(%d): %v", i, st.name, st.base, err)
			}
			base = b
		case st.base < 0:
			base = bases[st.baseFrom]
		}
		bases[i] = base
		c.Advance(time.Second)
		err := s.PutSyncState(ctx, u, dev, coll, base, &devices.SyncState{Key: st.next, Data: []byte(st.data)})
		if st.err == nil && err != nil || st.err != nil && !errors.Is(err, st.err) {
			t.Fatalf("step %d (%s): PutSyncState: %v, want %v", i, st.name, err, st.err)
		}
		for k, data := range st.have {
			got, err := s.GetSyncState(ctx, u, dev, coll, k)
			if err != nil {
				t.Errorf("step %d (%s): GetSyncState(%d): %v", i, st.name, k, err)
				continue
			}
			if got.Key != k || string(got.Data) != data {
				t.Errorf("step %d (%s): GetSyncState(%d) = key %d %q, want %q", i, st.name, k, got.Key, got.Data, data)
			}
		}
		for _, k := range st.missing {
			_, err := s.GetSyncState(ctx, u, dev, coll, k)
			wantErr(t, fmt.Sprintf("step %d (%s): GetSyncState(%d)", i, st.name, k), err, devices.ErrNotFound)
		}
		l, err := s.LatestSyncState(ctx, u, dev, coll)
		if err != nil || l.Key != st.latest || string(l.Data) != st.have[st.latest] {
			t.Errorf("step %d (%s): LatestSyncState = %+v, %v; want key %d", i, st.name, l, err, st.latest)
		}
		if st.err == nil && l != nil && !l.Updated.Equal(c.Now()) {
			t.Errorf("step %d (%s): Updated %v, want the store clock's %v", i, st.name, l.Updated, c.Now())
		}
	}
}

func testSyncStateData(t *testing.T, s devices.Store, c *Clock) {
	const u, dev = "alice", "dev"
	_, err := s.GetSyncState(ctx, u, dev, "c", 1)
	wantErr(t, "GetSyncState of unknown collection", err, devices.ErrNotFound)
	_, err = s.LatestSyncState(ctx, u, dev, "c")
	wantErr(t, "LatestSyncState of unknown collection", err, devices.ErrNotFound)
	_, err = s.GetSyncState(ctx, u, dev, "c", 0)
	wantErr(t, "GetSyncState(0)", err, devices.ErrNotFound)
	err = s.PutSyncState(ctx, u, dev, "c", &devices.SyncState{Key: 1, Revision: 1}, &devices.SyncState{Key: 2})
	wantErr(t, "PutSyncState on unknown collection with a base", err, devices.ErrConflict)

	big := make([]byte, 1<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	tests := []struct {
		name string
		key  uint64
		data []byte
	}{
		{"empty", 1, nil},
		{"binary with NUL and invalid UTF-8", 2, []byte{0, 1, 0xff, 0xfe, '"', '\\', 0, 'x'}},
		{"largest key", 1<<64 - 1, []byte("max")},
		{"key beyond float precision", 1<<53 + 1, []byte("2^53+1")},
		{"one MiB", 3, big},
	}
	for _, tt := range tests {
		coll := "data-" + tt.name
		if err := s.PutSyncState(ctx, u, dev, coll, nil, &devices.SyncState{Key: tt.key, Data: tt.data}); err != nil {
			t.Fatalf("%s: PutSyncState: %v", tt.name, err)
		}
		got, err := s.GetSyncState(ctx, u, dev, coll, tt.key)
		if err != nil {
			t.Fatalf("%s: GetSyncState: %v", tt.name, err)
		}
		if got.Key != tt.key || !bytes.Equal(got.Data, tt.data) {
			t.Errorf("%s: got key %d and %d bytes, want key %d and %d bytes", tt.name, got.Key, len(got.Data), tt.key, len(tt.data))
		}
		if tt.key == 1<<53+1 {
			if _, err := s.GetSyncState(ctx, u, dev, coll, 1<<53); !errors.Is(err, devices.ErrNotFound) {
				t.Errorf("%s: key 2^53 matched the stored 2^53+1: %v", tt.name, err)
			}
		}
		// The previous state keeps its bytes when the next one is stored.
		nextKey := tt.key + 1
		if nextKey == 0 {
			nextKey = tt.key - 1
		}
		if err := s.PutSyncState(ctx, u, dev, coll, got, &devices.SyncState{Key: nextKey, Data: []byte("next")}); err != nil {
			t.Fatalf("%s: advance: %v", tt.name, err)
		}
		prev, err := s.GetSyncState(ctx, u, dev, coll, tt.key)
		if err != nil {
			t.Errorf("%s: previous state after advance: %v", tt.name, err)
		} else if !bytes.Equal(prev.Data, tt.data) {
			t.Errorf("%s: previous state after advance has %d other bytes, want the %d stored", tt.name, len(prev.Data), len(tt.data))
		}
	}
	// The caller's buffers are not kept: changing them later changes nothing stored.
	buf := []byte("mutable")
	if err := s.PutSyncState(ctx, u, dev, "alias", nil, &devices.SyncState{Key: 5, Data: buf}); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXX")
	got, err := s.GetSyncState(ctx, u, dev, "alias", 5)
	if err != nil || string(got.Data) != "mutable" {
		t.Errorf("stored data aliased the caller's buffer: %q, %v", got.Data, err)
	}
}

func testSyncConcurrentAdvance(t *testing.T, s devices.Store, c *Clock) {
	const u, dev, coll, workers = "alice", "dev", "inbox", 8
	if err := s.PutSyncState(ctx, u, dev, coll, nil, &devices.SyncState{Key: 1, Data: []byte("base")}); err != nil {
		t.Fatal(err)
	}
	baseKey := uint64(1)
	for round := range 5 {
		base, err := s.GetSyncState(ctx, u, dev, coll, baseKey)
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		// Every worker advances from the same base to a key of its own.
		errs := make([]error, workers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range workers {
			wg.Go(func() {
				<-start
				next := &devices.SyncState{Key: baseKey*100 + uint64(i), Data: fmt.Appendf(nil, "worker %d", i)}
				errs[i] = s.PutSyncState(ctx, u, dev, coll, base, next)
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner < 0:
				winner = i
			case err == nil:
				t.Errorf("round %d: workers %d and %d both advanced from key %d", round, winner, i, baseKey)
			case !errors.Is(err, devices.ErrConflict):
				t.Errorf("round %d: worker %d: %v, want ErrConflict", round, i, err)
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no worker advanced", round)
		}
		winKey := baseKey*100 + uint64(winner)
		l, err := s.LatestSyncState(ctx, u, dev, coll)
		if err != nil || l.Key != winKey || string(l.Data) != fmt.Sprintf("worker %d", winner) {
			t.Fatalf("round %d: latest state %+v, %v; want the winner's (worker %d)", round, l, err, winner)
		}
		if prev, err := s.GetSyncState(ctx, u, dev, coll, baseKey); err != nil || !bytes.Equal(prev.Data, base.Data) {
			t.Errorf("round %d: base key %d no longer loads as the previous state: %+v, %v", round, baseKey, prev, err)
		}
		for i := range workers {
			if i == winner {
				continue
			}
			_, err := s.GetSyncState(ctx, u, dev, coll, baseKey*100+uint64(i))
			wantErr(t, fmt.Sprintf("round %d: loser %d's key", round, i), err, devices.ErrNotFound)
		}
		baseKey = winKey
	}
}

func testSyncCollections(t *testing.T, s devices.Store, c *Clock) {
	got, err := s.SyncCollections(ctx, "alice", "dev")
	if err != nil || len(got) != 0 {
		t.Fatalf("SyncCollections of a new device = %q, %v", got, err)
	}
	colls := []string{"5", devices.HierarchyCollection, "a:b", "{x}", "1", "ü"}
	for i, coll := range colls {
		if err := s.PutSyncState(ctx, "alice", "DEV", coll, nil, &devices.SyncState{Key: 1, Data: []byte{byte(i)}}); err != nil {
			t.Fatalf("PutSyncState(%q): %v", coll, err)
		}
	}
	// Same collection ids on another device and another user stay apart.
	if err := s.PutSyncState(ctx, "alice", "other", "5", nil, &devices.SyncState{Key: 1, Data: []byte("other device")}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSyncState(ctx, "bob", "dev", "5", nil, &devices.SyncState{Key: 1, Data: []byte("other user")}); err != nil {
		t.Fatal(err)
	}
	got, err = s.SyncCollections(ctx, "alice", "dev")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"", "1", "5", "a:b", "{x}", "ü"}; !slices.Equal(got, want) {
		t.Errorf("SyncCollections = %q, want %q", got, want)
	}
	for i, coll := range colls {
		st, err := s.GetSyncState(ctx, "alice", "dev", coll, 1)
		if err != nil || !bytes.Equal(st.Data, []byte{byte(i)}) {
			t.Errorf("GetSyncState(%q) = %+v, %v", coll, st, err)
		}
	}
	for _, p := range [][3]string{{"alice", "other", "other device"}, {"bob", "dev", "other user"}} {
		st, err := s.GetSyncState(ctx, p[0], p[1], "5", 1)
		if err != nil || string(st.Data) != p[2] {
			t.Errorf("GetSyncState(%s, %s, 5) = %+v, %v", p[0], p[1], st, err)
		}
		got, err := s.SyncCollections(ctx, p[0], p[1])
		if err != nil || !slices.Equal(got, []string{"5"}) {
			t.Errorf("SyncCollections(%s, %s) = %q, %v", p[0], p[1], got, err)
		}
	}
}

func testDeleteSyncStates(t *testing.T, s devices.Store, c *Clock) {
	for _, coll := range []string{"", "1", "2", "3"} {
		if err := s.PutSyncState(ctx, "alice", "dev", coll, nil, &devices.SyncState{Key: 4, Data: []byte(coll)}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		del  []string
		want []string
	}{
		{nil, []string{"", "1", "2", "3"}},
		{[]string{"2", "nosuch"}, []string{"", "1", "3"}},
		{[]string{"", "3"}, []string{"1"}},
		{[]string{"1"}, nil},
	}
	for i, st := range steps {
		if err := s.DeleteSyncStates(ctx, "alice", "DEV", st.del...); err != nil {
			t.Fatalf("step %d: DeleteSyncStates(%q): %v", i, st.del, err)
		}
		got, err := s.SyncCollections(ctx, "alice", "dev")
		if err != nil || !slices.Equal(got, st.want) {
			t.Errorf("step %d: after deleting %q: SyncCollections = %q, %v; want %q", i, st.del, got, err, st.want)
		}
		for _, coll := range st.del {
			_, err := s.GetSyncState(ctx, "alice", "dev", coll, 4)
			wantErr(t, fmt.Sprintf("step %d: GetSyncState(%q) after delete", i, coll), err, devices.ErrNotFound)
			_, err = s.LatestSyncState(ctx, "alice", "dev", coll)
			wantErr(t, fmt.Sprintf("step %d: LatestSyncState(%q) after delete", i, coll), err, devices.ErrNotFound)
		}
		for _, coll := range st.want {
			if got, err := s.GetSyncState(ctx, "alice", "dev", coll, 4); err != nil || string(got.Data) != coll {
				t.Errorf("step %d: GetSyncState(%q) = %+v, %v", i, coll, got, err)
			}
		}
	}
	// A deleted collection starts over with SyncKey 0 only.
	err := s.PutSyncState(ctx, "alice", "dev", "1", &devices.SyncState{Key: 4}, &devices.SyncState{Key: 5})
	wantErr(t, "advance of a deleted collection", err, devices.ErrConflict)
}

func testCachedRequests(t *testing.T, s devices.Store, c *Clock) {
	_, err := s.GetCachedRequest(ctx, "alice", "dev", devices.RequestSync)
	wantErr(t, "GetCachedRequest before any", err, devices.ErrNotFound)

	syncBody := []byte{0x03, 0x01, 0x6a, 0x00, 0x00, 0x00, 0x45, 0x5c}
	pingBody := []byte{0x03, 0x01, 0x6a, 0x00, 0x00, 0x0d, 0x45}
	if err := s.PutCachedRequest(ctx, "alice", "Dev", devices.RequestSync, syncBody); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCachedRequest(ctx, "alice", "dev", devices.RequestPing, pingBody); err != nil {
		t.Fatal(err)
	}
	syncBody[0] = 0xee // the store must have copied it
	tests := []struct {
		user, dev, kind string
		want            []byte
	}{
		{"alice", "DEV", devices.RequestSync, []byte{0x03, 0x01, 0x6a, 0x00, 0x00, 0x00, 0x45, 0x5c}},
		{"alice", "dev", devices.RequestPing, pingBody},
		{"alice", "dev2", devices.RequestSync, nil},
		{"bob", "dev", devices.RequestSync, nil},
	}
	for _, tt := range tests {
		got, err := s.GetCachedRequest(ctx, tt.user, tt.dev, tt.kind)
		if tt.want == nil {
			wantErr(t, fmt.Sprintf("GetCachedRequest(%s, %s, %s)", tt.user, tt.dev, tt.kind), err, devices.ErrNotFound)
			continue
		}
		if err != nil || !bytes.Equal(got, tt.want) {
			t.Errorf("GetCachedRequest(%s, %s, %s) = %x, %v; want %x", tt.user, tt.dev, tt.kind, got, err, tt.want)
		}
	}
	if err := s.PutCachedRequest(ctx, "alice", "dev", devices.RequestSync, []byte("replaced")); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetCachedRequest(ctx, "alice", "dev", devices.RequestSync); err != nil || string(got) != "replaced" {
		t.Errorf("after replace: %q, %v", got, err)
	}
	for _, empty := range [][]byte{nil, {}} {
		if err := s.PutCachedRequest(ctx, "alice", "dev", devices.RequestSync, []byte("again")); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCachedRequest(ctx, "alice", "dev", devices.RequestSync, empty); err != nil {
			t.Fatal(err)
		}
		_, err := s.GetCachedRequest(ctx, "alice", "dev", devices.RequestSync)
		wantErr(t, fmt.Sprintf("GetCachedRequest after storing %#v", empty), err, devices.ErrNotFound)
	}
	if got, err := s.GetCachedRequest(ctx, "alice", "dev", devices.RequestPing); err != nil || !bytes.Equal(got, pingBody) {
		t.Errorf("removing the Sync request touched the Ping one: %x, %v", got, err)
	}
}

func testAuthFailures(t *testing.T, s devices.Store, c *Clock) {
	const k1, k2 = "alice|192.0.2.1", "alice|2001:db8::1"
	steps := []struct {
		op   string // incr, reset
		key  string
		want int // count returned by incr, then by AuthFailures
	}{
		{"get", k1, 0},
		{"incr", k1, 1},
		{"incr", k1, 2},
		{"incr", k2, 1},
		{"incr", k1, 3},
		{"get", k1, 3},
		{"get", k2, 1},
		{"reset", k1, 0},
		{"get", k2, 1},
		{"incr", k1, 1},
		{"reset", "nosuch", 0},
	}
	for i, st := range steps {
		var n int
		var err error
		switch st.op {
		case "incr":
			n, err = s.IncrAuthFailures(ctx, st.key, time.Hour)
		case "reset":
			err = s.ResetAuthFailures(ctx, st.key)
		}
		if err != nil {
			t.Fatalf("step %d: %s(%q): %v", i, st.op, st.key, err)
		}
		if st.op == "incr" && n != st.want {
			t.Errorf("step %d: IncrAuthFailures(%q) = %d, want %d", i, st.key, n, st.want)
		}
		if got, err := s.AuthFailures(ctx, st.key); err != nil || got != st.want {
			t.Errorf("step %d: after %s: AuthFailures(%q) = %d, %v; want %d", i, st.op, st.key, got, err, st.want)
		}
	}
}

func testAuthFailuresExpiry(t *testing.T, s devices.Store, c *Clock) {
	const k, ttl = "bob|198.51.100.7", time.Minute
	check := func(what string, want int) {
		t.Helper()
		if got, err := s.AuthFailures(ctx, k); err != nil || got != want {
			t.Errorf("%s: AuthFailures = %d, %v; want %d", what, got, err, want)
		}
	}
	incr := func(what string, want int) {
		t.Helper()
		if got, err := s.IncrAuthFailures(ctx, k, ttl); err != nil || got != want {
			t.Errorf("%s: IncrAuthFailures = %d, %v; want %d", what, got, err, want)
		}
	}
	incr("first failure", 1)
	c.Advance(ttl - time.Millisecond)
	check("just before expiry", 1)
	incr("second failure before expiry", 2)
	c.Advance(ttl - time.Millisecond)
	check("the second failure renewed the window", 2)
	c.Advance(time.Millisecond)
	check("ttl after the last failure", 0)
	incr("failure after expiry starts over", 1)
	c.Advance(10 * ttl)
	check("long after", 0)
}

func testDeleteDevice(t *testing.T, s devices.Store, c *Clock) {
	populate := func(user, dev string) {
		mustUpsert(t, s, user, dev, func(d *devices.Device) { d.Type = "iPhone" })
		for _, coll := range []string{devices.HierarchyCollection, "1", "2"} {
			if err := s.PutSyncState(ctx, user, dev, coll, nil, &devices.SyncState{Key: 3, Data: []byte(user + dev + coll)}); err != nil {
				t.Fatal(err)
			}
			base, err := s.GetSyncState(ctx, user, dev, coll, 3)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.PutSyncState(ctx, user, dev, coll, base, &devices.SyncState{Key: 4, Data: []byte("4")}); err != nil {
				t.Fatal(err)
			}
		}
		for _, kind := range []string{devices.RequestSync, devices.RequestPing} {
			if err := s.PutCachedRequest(ctx, user, dev, kind, []byte(kind)); err != nil {
				t.Fatal(err)
			}
		}
	}
	populate("alice", "gone")
	populate("alice", "kept")
	populate("bob", "gone")

	if err := s.DeleteDevice(ctx, "alice", "GONE"); err != nil {
		t.Fatalf("DeleteDevice: %v", err)
	}
	_, err := s.GetDevice(ctx, "alice", "gone")
	wantErr(t, "GetDevice after delete", err, devices.ErrNotFound)
	for _, coll := range []string{devices.HierarchyCollection, "1", "2"} {
		for _, key := range []uint64{3, 4} {
			_, err := s.GetSyncState(ctx, "alice", "gone", coll, key)
			wantErr(t, fmt.Sprintf("GetSyncState(%q, %d) after delete", coll, key), err, devices.ErrNotFound)
		}
		_, err := s.LatestSyncState(ctx, "alice", "gone", coll)
		wantErr(t, fmt.Sprintf("LatestSyncState(%q) after delete", coll), err, devices.ErrNotFound)
	}
	if got, err := s.SyncCollections(ctx, "alice", "gone"); err != nil || len(got) != 0 {
		t.Errorf("SyncCollections after delete = %q, %v", got, err)
	}
	for _, kind := range []string{devices.RequestSync, devices.RequestPing} {
		_, err := s.GetCachedRequest(ctx, "alice", "gone", kind)
		wantErr(t, "GetCachedRequest("+kind+") after delete", err, devices.ErrNotFound)
	}
	list, err := s.ListDevices(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(list), []string{"alice/kept", "bob/gone"}; !slices.Equal(got, want) {
		t.Errorf("ListDevices after delete = %v, want %v", got, want)
	}
	// The other device of the user and the same device id of another user
	// keep everything.
	for _, p := range [][2]string{{"alice", "kept"}, {"bob", "gone"}} {
		if got, err := s.SyncCollections(ctx, p[0], p[1]); err != nil || !slices.Equal(got, []string{"", "1", "2"}) {
			t.Errorf("SyncCollections(%s, %s) = %q, %v", p[0], p[1], got, err)
		}
		if st, err := s.GetSyncState(ctx, p[0], p[1], "1", 3); err != nil || string(st.Data) != p[0]+p[1]+"1" {
			t.Errorf("GetSyncState(%s, %s, 1, 3) = %+v, %v", p[0], p[1], st, err)
		}
		if b, err := s.GetCachedRequest(ctx, p[0], p[1], devices.RequestPing); err != nil || string(b) != devices.RequestPing {
			t.Errorf("GetCachedRequest(%s, %s) = %q, %v", p[0], p[1], b, err)
		}
	}

	wantErr(t, "second DeleteDevice", s.DeleteDevice(ctx, "alice", "gone"), devices.ErrNotFound)

	// State without a record is deleted all the same.
	if err := s.PutSyncState(ctx, "carol", "orphan", "1", nil, &devices.SyncState{Key: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCachedRequest(ctx, "carol", "orphan", devices.RequestPing, []byte("p")); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "DeleteDevice of a device without record", s.DeleteDevice(ctx, "carol", "orphan"), devices.ErrNotFound)
	if got, err := s.SyncCollections(ctx, "carol", "orphan"); err != nil || len(got) != 0 {
		t.Errorf("orphan state survived DeleteDevice: %q, %v", got, err)
	}
	_, err = s.GetCachedRequest(ctx, "carol", "orphan", devices.RequestPing)
	wantErr(t, "orphan cached request after DeleteDevice", err, devices.ErrNotFound)

	// A new partnership starts from nothing.
	d := mustUpsert(t, s, "alice", "gone", nil)
	if d.Revision != 1 || d.Type != "" {
		t.Errorf("re-created device %+v carries old data", d)
	}
}

// AwkwardUsers are user names that break naive key schemes: hash-tag braces,
// separators, escapes, percent signs, non-ASCII text.
var AwkwardUsers = []string{
	"a{b}@x.org", `DOMAIN\user`, "ünïcødé@例え.jp", "}{", "{", "}", "x:y", "%41", "A",
	"a b", "user:dev:x", "*", "a\x00b", "alice@example.org",
}

func testAwkwardNames(t *testing.T, s devices.Store, c *Clock) {
	// Device "a" with collection "b:c" must not meet device "a:b" with "c".
	devs := []struct{ id, coll string }{{"Dev", "c"}, {"a:b", "c"}, {"a", "b:c"}, {"{}", "c"}, {"ÄÖ", "c"}}
	tag := func(u, id string) string { return u + "|" + devices.NormalizeID(id) }
	for _, u := range AwkwardUsers {
		for _, d := range devs {
			mustUpsert(t, s, u, d.id, func(r *devices.Device) { r.Type = tag(u, d.id) })
			if err := s.PutSyncState(ctx, u, d.id, d.coll, nil, &devices.SyncState{Key: 1, Data: []byte(tag(u, d.id))}); err != nil {
				t.Fatalf("PutSyncState(%q, %q): %v", u, d.id, err)
			}
			if err := s.PutCachedRequest(ctx, u, d.id, devices.RequestPing, []byte(tag(u, d.id))); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := s.IncrAuthFailures(ctx, u, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	var wantAll []string
	for _, u := range AwkwardUsers {
		var want []string
		for _, d := range devs {
			id := devices.NormalizeID(d.id)
			want = append(want, u+"/"+id)
			r, err := s.GetDevice(ctx, u, id)
			if err != nil || r.User != u || r.ID != id || r.Type != tag(u, id) {
				t.Errorf("GetDevice(%q, %q) = %+v, %v", u, id, r, err)
			}
			if got, err := s.SyncCollections(ctx, u, id); err != nil || !slices.Equal(got, []string{d.coll}) {
				t.Errorf("SyncCollections(%q, %q) = %q, %v; want [%q]", u, id, got, err, d.coll)
			}
			if st, err := s.GetSyncState(ctx, u, id, d.coll, 1); err != nil || string(st.Data) != tag(u, id) {
				t.Errorf("GetSyncState(%q, %q, %q) = %+v, %v", u, id, d.coll, st, err)
			}
			if b, err := s.GetCachedRequest(ctx, u, id, devices.RequestPing); err != nil || string(b) != tag(u, id) {
				t.Errorf("GetCachedRequest(%q, %q) = %q, %v", u, id, b, err)
			}
		}
		slices.Sort(want)
		wantAll = append(wantAll, want...)
		list, err := s.ListDevices(ctx, u)
		if err != nil || !slices.Equal(ids(list), want) {
			t.Errorf("ListDevices(%q) = %q, %v; want %q", u, ids(list), err, want)
		}
		if n, err := s.AuthFailures(ctx, u); err != nil || n != 1 {
			t.Errorf("AuthFailures(%q) = %d, %v; want 1", u, n, err)
		}
	}
	// Sorted by user, then id: the user/id strings sort the same way except
	// where a user name is a prefix of another, so sort pairs explicitly.
	all, err := s.ListDevices(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want := slices.Clone(all)
	slices.SortFunc(want, func(a, b *devices.Device) int {
		return cmp.Or(strings.Compare(a.User, b.User), strings.Compare(a.ID, b.ID))
	})
	if got := ids(all); !slices.Equal(got, ids(want)) {
		t.Errorf("ListDevices(\"\") = %q, not sorted by user and id", got)
	}
	got := ids(all)
	slices.Sort(got)
	slices.Sort(wantAll)
	if !slices.Equal(got, wantAll) {
		t.Errorf("ListDevices(\"\") = %q, want %q", got, wantAll)
	}
	for _, u := range AwkwardUsers {
		if err := s.DeleteDevice(ctx, u, "a"); err != nil {
			t.Errorf("DeleteDevice(%q, a): %v", u, err)
		}
		if got, err := s.SyncCollections(ctx, u, "a:b"); err != nil || !slices.Equal(got, []string{"c"}) {
			t.Errorf("deleting device a of %q touched device a:b: %q, %v", u, got, err)
		}
	}
}
