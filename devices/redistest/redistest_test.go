package redistest

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/easgate/easgate/backend/testsrv/testproc"
)

func TestStandalone(t *testing.T) {
	ctx := context.Background()
	s := Start(t)
	rdb := s.Client(t)
	if err := rdb.Set(ctx, "k", "v\x00bytes", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	got, err := rdb.Get(ctx, "k").Result()
	if err != nil || got != "v\x00bytes" {
		t.Fatalf("GET = %q, %v; want %q", got, err, "v\x00bytes")
	}
	save, err := rdb.ConfigGet(ctx, "save").Result()
	if err != nil || save["save"] != "" {
		t.Errorf("CONFIG GET save = %v, %v; want persistence off", save, err)
	}
	aof, err := rdb.ConfigGet(ctx, "appendonly").Result()
	if err != nil || aof["appendonly"] != "no" {
		t.Errorf("CONFIG GET appendonly = %v, %v; want no", aof, err)
	}
}

func TestStop(t *testing.T) {
	var addr, dir string
	var pid int
	t.Run("own server", func(t *testing.T) {
		s := Start(t)
		if err := s.Client(t).Ping(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		addr, dir, pid = s.Addr, s.Dir, s.PID
	})
	testproc.CheckGone(t, addr, dir, pid)
}

func TestCluster(t *testing.T) {
	ctx := context.Background()
	c := StartCluster(t, 3)
	if len(c.Addrs) != 3 {
		t.Fatalf("%d nodes, want 3", len(c.Addrs))
	}
	rdb := c.Client(t)

	// Keys spread over the slot space must land on every node.
	const keys = 64
	for i := 0; i < keys; i++ {
		if err := rdb.Set(ctx, fmt.Sprintf("key-%d", i), i, 0).Err(); err != nil {
			t.Fatalf("SET key-%d: %v", i, err)
		}
	}
	for i := 0; i < keys; i++ {
		got, err := rdb.Get(ctx, fmt.Sprintf("key-%d", i)).Int()
		if err != nil || got != i {
			t.Fatalf("GET key-%d = %d, %v; want %d", i, got, err, i)
		}
	}
	var nodesWithKeys atomic.Int32 // ForEachMaster runs fn concurrently
	err := rdb.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		n, err := node.DBSize(ctx).Result()
		if err != nil {
			return err
		}
		if n > 0 {
			nodesWithKeys.Add(1)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("DBSIZE on masters: %v", err)
	}
	if n := nodesWithKeys.Load(); n != 3 {
		t.Errorf("keys landed on %d masters, want all 3", n)
	}

	// A transaction over hash-tagged keys stays on one slot.
	cmds, err := rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, "{alice}:a", "1", 0)
		p.Set(ctx, "{alice}:b", "2", 0)
		p.Incr(ctx, "{alice}:a")
		return nil
	})
	if err != nil {
		t.Fatalf("MULTI/EXEC on {alice}: %v", err)
	}
	if n := cmds[2].(*redis.IntCmd).Val(); n != 2 {
		t.Errorf("INCR inside EXEC = %d, want 2", n)
	}
	vals, err := rdb.MGet(ctx, "{alice}:a", "{alice}:b").Result()
	if err != nil || len(vals) != 2 || vals[0] != "2" || vals[1] != "2" {
		t.Errorf("MGET {alice}:a {alice}:b = %v, %v; want [2 2]", vals, err)
	}
}
