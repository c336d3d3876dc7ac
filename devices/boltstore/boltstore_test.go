package boltstore

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/devices/storetest"
)

func newStore(tb testing.TB, now func() time.Time) devices.Store {
	s, err := Open(filepath.Join(tb.TempDir(), "state", "devices.db"), WithClock(now))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, newStore) }

func BenchmarkStore(b *testing.B) { storetest.Bench(b, newStore) }

func TestReopenKeepsState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "devices.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := s.UpsertDevice(ctx, "alice", "Dev", func(d *devices.Device) error { d.PolicyKey = 7; return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSyncState(ctx, "alice", "dev", "1", nil, &devices.SyncState{Key: 3, Data: []byte("state")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if d, err := s.GetDevice(ctx, "alice", "dev"); err != nil || d.PolicyKey != 7 {
		t.Errorf("device after reopen: %+v, %v", d, err)
	}
	if st, err := s.GetSyncState(ctx, "alice", "dev", "1", 3); err != nil || string(st.Data) != "state" {
		t.Errorf("sync state after reopen: %+v, %v", st, err)
	}
}

func TestSweepExpiredCounters(t *testing.T) {
	c := storetest.NewClock(time.Now())
	s, err := Open(filepath.Join(t.TempDir(), "devices.db"), WithClock(c.Now))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	for i := range sweepEvery - 1 {
		if _, err := s.IncrAuthFailures(ctx, string(rune('a'+i%26))+string(rune(i)), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	c.Advance(time.Hour)
	// The sweepEvery-th call drops the expired counters and keeps its own.
	if n, err := s.IncrAuthFailures(ctx, "fresh", time.Minute); err != nil || n != 1 {
		t.Fatalf("IncrAuthFailures = %d, %v", n, err)
	}
	keys := 0
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAuth).ForEach(func(k, _ []byte) error { keys++; return nil })
	})
	if err != nil || keys != 1 {
		t.Errorf("after sweep the auth bucket holds %d counters, %v; want 1", keys, err)
	}
}

func TestDecodeStateRejectsCorruption(t *testing.T) {
	good := encodeState(&collState{rev: 1, updated: 2, curKey: 3, cur: []byte("cur"), prevKey: 4, prev: []byte("prev")})
	st, err := decodeState(good)
	if err != nil || string(st.cur) != "cur" || string(st.prev) != "prev" || st.rev != 1 || st.curKey != 3 || st.prevKey != 4 {
		t.Fatalf("round trip: %+v, %v", st, err)
	}
	bad := [][]byte{nil, good[:10], append([]byte{9}, good[1:]...), append(good[:33:33], 0xff, 0xff, 0xff, 0x01)}
	for i, v := range bad {
		if _, err := decodeState(v); err != errCorrupt {
			t.Errorf("case %d: %v, want errCorrupt", i, err)
		}
	}
}
