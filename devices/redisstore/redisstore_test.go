package redisstore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/devices/redistest"
	"github.com/easgate/easgate/devices/storetest"
)

func standaloneClients(srv *redistest.Server) func() redis.UniversalClient {
	return func() redis.UniversalClient { return redis.NewClient(&redis.Options{Addr: srv.Addr, Protocol: 3}) }
}

func clusterClients(c *redistest.Cluster) func() redis.UniversalClient {
	return func() redis.UniversalClient {
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, Protocol: 3})
	}
}

// TestStandalone runs the conformance suite on one private redis-server.
func TestStandalone(t *testing.T) {
	runSuite(t, standaloneClients(redistest.Start(t)))
}

// TestCluster runs the conformance suite on a private 3-master Redis
// Cluster, then checks with CLUSTER KEYSLOT that every user's keys share
// one slot.
func TestCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	prefixes := runSuite(t, clusterClients(c))
	rdb := c.Client(t)
	checkSlots(t, rdb, prefixes)
	checkAwkwardSlots(t, rdb, clusterClients(c))
}

func BenchmarkStandalone(b *testing.B) {
	newClient := standaloneClients(redistest.Start(b))
	storetest.Bench(b, func(tb testing.TB, now func() time.Time) devices.Store { return newTestStore(tb, newClient, now) })
}

func BenchmarkCluster(b *testing.B) {
	newClient := clusterClients(redistest.StartCluster(b, 3))
	storetest.Bench(b, func(tb testing.TB, now func() time.Time) devices.Store { return newTestStore(tb, newClient, now) })
}

// prefixSeq makes the prefix of every store in a test binary unique, so
// stores sharing one Redis never see each other's keys.
var prefixSeq atomic.Uint64

func uniquePrefix() string {
	return fmt.Sprintf("t%d-%d", time.Now().UnixNano(), prefixSeq.Add(1))
}

// runSuite runs the conformance suite on stores over clients from
// newClient, each with a prefix of its own. It returns the prefixes used.
func runSuite(t *testing.T, newClient func() redis.UniversalClient) []string {
	var mu sync.Mutex
	var prefixes []string
	storetest.Run(t, func(tb testing.TB, now func() time.Time) devices.Store {
		s := newTestStore(tb, newClient, now)
		mu.Lock()
		prefixes = append(prefixes, s.prefix)
		mu.Unlock()
		return s
	})
	return prefixes
}

// newTestStore returns a store with a prefix of its own over a client from
// newClient, closed at the end of the test.
func newTestStore(tb testing.TB, newClient func() redis.UniversalClient, now func() time.Time) *Store {
	s, err := New(newClient(), WithPrefix(uniquePrefix()), WithClock(now))
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

// checkSlots asserts, on a Cluster, that every key under the prefixes that
// carries a hash tag sits in the slot of its user's devices key, and that
// every awkward user's keys exist and share one slot.
func checkSlots(t *testing.T, rdb *redis.ClusterClient, prefixes []string) {
	ctx := t.Context()
	var mu sync.Mutex
	var keys []string
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
		for _, p := range prefixes {
			iter := c.Scan(ctx, 0, p+":*", 1000).Iterator()
			for iter.Next(ctx) {
				mu.Lock()
				keys = append(keys, iter.Val())
				mu.Unlock()
			}
			if err := iter.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 100 {
		t.Fatalf("found only %d keys after the suite", len(keys))
	}
	tagged := 0
	for _, k := range keys {
		open := strings.IndexByte(k, '{')
		if open < 0 {
			if !strings.HasSuffix(k, ":users") && !strings.Contains(k, ":auth:") {
				t.Errorf("key %q has no hash tag", k)
			}
			continue
		}
		tagged++
		end := open + strings.IndexByte(k[open:], '}')
		devicesKey := k[:end+1] + ":devices"
		got, err := rdb.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		want, err := rdb.ClusterKeySlot(ctx, devicesKey).Result()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("key %q in slot %d, its user's %q in slot %d", k, got, devicesKey, want)
		}
	}
	t.Logf("%d keys, %d hash-tagged, all in their user's slot", len(keys), tagged)
}

// checkAwkwardSlots stores state for every awkward user name and checks,
// key by key, that it exists and that all of one user's keys share a slot
// while the users do not all share one.
func checkAwkwardSlots(t *testing.T, rdb *redis.ClusterClient, newClient func() redis.UniversalClient) {
	ctx := t.Context()
	s := newTestStore(t, newClient, time.Now)
	slots := map[int64]bool{}
	for _, u := range storetest.AwkwardUsers {
		if _, err := s.UpsertDevice(ctx, u, "Dev{1}", func(*devices.Device) error { return nil }); err != nil {
			t.Fatal(err)
		}
		if err := s.PutSyncState(ctx, u, "Dev{1}", "1", nil, &devices.SyncState{Key: 1}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutCachedRequest(ctx, u, "Dev{1}", devices.RequestSync, []byte("x")); err != nil {
			t.Fatal(err)
		}
		userKeys := []string{s.devicesKey(u), s.syncKey(u, "dev{1}"), s.reqKey(u, "dev{1}")}
		var slot int64 = -1
		for _, k := range userKeys {
			if n, err := rdb.Exists(ctx, k).Result(); err != nil || n != 1 {
				t.Errorf("user %q: key %q missing (%v)", u, k, err)
			}
			got, err := rdb.ClusterKeySlot(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if slot >= 0 && got != slot {
				t.Errorf("user %q: key %q in slot %d, others in %d", u, k, got, slot)
			}
			slot = got
		}
		slots[slot] = true
	}
	if len(slots) < len(storetest.AwkwardUsers)/2 {
		t.Errorf("%d users share only %d slots: the hash tag is not per user", len(storetest.AwkwardUsers), len(slots))
	}
}
