package storetest

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/easgate/easgate/devices"
)

// Bench measures the operations on a store's hot path: the per-request
// device touch, a device read, a SyncKey advance (read the base, write the
// next state) with a 4 KiB state, the same from parallel goroutines on
// collections of their own, and an auth-failure count.
func Bench(b *testing.B, newStore NewStore) {
	data := make([]byte, 4<<10)
	b.Run("UpsertDeviceTouch", func(b *testing.B) {
		s := newStore(b, time.Now)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.UpsertDevice(ctx, "alice@example.org", "ApplF17ABCDEF", func(d *devices.Device) error {
				d.LastSeen = time.Now()
				d.ProtocolVersion = "16.1"
				return nil
			}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("GetDevice", func(b *testing.B) {
		s := newStore(b, time.Now)
		if _, err := s.UpsertDevice(ctx, "alice@example.org", "dev", func(*devices.Device) error { return nil }); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.GetDevice(ctx, "alice@example.org", "dev"); err != nil {
				b.Fatal(err)
			}
		}
	})
	advance := func(b *testing.B, s devices.Store, coll string, key *uint64) {
		base, err := s.GetSyncState(ctx, "alice@example.org", "dev", coll, *key)
		if err != nil {
			b.Fatal(err)
		}
		*key++
		if err := s.PutSyncState(ctx, "alice@example.org", "dev", coll, base, &devices.SyncState{Key: *key, Data: data}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("SyncAdvance4KiB", func(b *testing.B) {
		s := newStore(b, time.Now)
		if err := s.PutSyncState(ctx, "alice@example.org", "dev", "inbox", nil, &devices.SyncState{Key: 1, Data: data}); err != nil {
			b.Fatal(err)
		}
		key := uint64(1)
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		for b.Loop() {
			advance(b, s, "inbox", &key)
		}
	})
	b.Run("SyncAdvance4KiBParallel", func(b *testing.B) {
		s := newStore(b, time.Now)
		var seq atomic.Int64
		b.SetBytes(int64(len(data)))
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			coll := fmt.Sprint("c", seq.Add(1))
			if err := s.PutSyncState(ctx, "alice@example.org", "dev", coll, nil, &devices.SyncState{Key: 1, Data: data}); err != nil {
				b.Fatal(err)
			}
			key := uint64(1)
			for pb.Next() {
				advance(b, s, coll, &key)
			}
		})
	})
	b.Run("IncrAuthFailures", func(b *testing.B) {
		s := newStore(b, time.Now)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.IncrAuthFailures(ctx, "alice|192.0.2.1", time.Minute); err != nil {
				b.Fatal(err)
			}
		}
	})
}
