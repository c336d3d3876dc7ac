package redistest

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/easgate/easgate/backend/testsrv/testproc"
)

// clusterSlots is the number of hash slots in a Redis Cluster.
const clusterSlots = 16384

// Cluster is an n-master Redis Cluster without replicas, every node a
// private redis-server on loopback.
type Cluster struct {
	// Nodes are the cluster's servers; Nodes[i] owns the i-th even share
	// of the hash slots.
	Nodes []*Server
	// Addrs are the nodes' addresses, in the order of Nodes.
	Addrs []string

	busPorts []int // cluster bus port of each node
}

// StartCluster launches an n-master cluster for tb (use 3) and stops it at
// tb.Cleanup.
func StartCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	return testproc.ForTest(tb, "redis cluster", func() (*Cluster, error) { return LaunchCluster(n) }, (*Cluster).Stop)
}

// LaunchCluster starts n cluster-enabled servers, splits the hash slots
// evenly between them, joins them with CLUSTER MEET and waits until every
// node reports cluster_state:ok and knows every other node. The caller
// must call Stop.
func LaunchCluster(n int) (*Cluster, error) {
	if n < 1 {
		return nil, fmt.Errorf("cluster of %d nodes: need at least one", n)
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		var bus int
		s, err := launchRetrying(func(dir string, _ int) ([]string, error) {
			var args []string
			var err error
			bus, args, err = clusterArgs(dir)
			return args, err
		})
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
		c.busPorts = append(c.busPorts, bus)
	}
	if err := c.form(); err != nil {
		logs := c.logs()
		c.Stop()
		return nil, fmt.Errorf("forming cluster: %v\n%s", err, logs)
	}
	return c, nil
}

// clusterArgs enables cluster mode with the config file in the node's own
// directory and a free bus port (the default port+10000 may be taken).
func clusterArgs(dir string) (bus int, args []string, err error) {
	bus, err = testproc.FreePort()
	if err != nil {
		return 0, nil, err
	}
	return bus, []string{
		"--cluster-enabled", "yes",
		"--cluster-config-file", filepath.Join(dir, "nodes.conf"),
		"--cluster-port", strconv.Itoa(bus),
		"--cluster-node-timeout", "5000",
	}, nil
}

// form assigns slots, introduces the nodes and waits for a healthy view.
func (c *Cluster) form() error {
	ctx, cancel := context.WithTimeout(context.Background(), testproc.StartTimeout)
	defer cancel()
	clients := make([]*redis.Client, len(c.Nodes))
	for i, s := range c.Nodes {
		clients[i] = redis.NewClient(&redis.Options{Addr: s.Addr, Protocol: 3})
		defer clients[i].Close()
	}
	n := len(c.Nodes)
	for i, rdb := range clients {
		first, last := i*clusterSlots/n, (i+1)*clusterSlots/n-1
		if err := rdb.ClusterAddSlotsRange(ctx, first, last).Err(); err != nil {
			return fmt.Errorf("%s: CLUSTER ADDSLOTSRANGE %d %d: %w", c.Addrs[i], first, last, err)
		}
	}
	for i := 1; i < n; i++ {
		// The bus port is not port+10000, so MEET must name it (Redis 7).
		host, port, _ := net.SplitHostPort(c.Addrs[i])
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", host, port, c.busPorts[i]).Err(); err != nil {
			return fmt.Errorf("CLUSTER MEET %s: %w", c.Addrs[i], err)
		}
	}
	for i, rdb := range clients {
		if err := waitClusterOK(ctx, rdb, n); err != nil {
			return fmt.Errorf("%s: %w", c.Addrs[i], err)
		}
	}
	return nil
}

// waitClusterOK polls CLUSTER INFO until the node sees the cluster as ok
// with all n nodes known and all slots assigned.
func waitClusterOK(ctx context.Context, rdb *redis.Client, n int) error {
	want := []string{
		"cluster_state:ok",
		"cluster_slots_assigned:" + strconv.Itoa(clusterSlots),
		"cluster_known_nodes:" + strconv.Itoa(n),
	}
	var last string
	for {
		info, err := rdb.ClusterInfo(ctx).Result()
		if err == nil {
			last = info
			if hasAllLines(info, want) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster not ok: %w; last CLUSTER INFO:\n%s", ctx.Err(), last)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func hasAllLines(info string, want []string) bool {
	lines := make(map[string]bool)
	for _, l := range strings.Split(info, "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, w := range want {
		if !lines[w] {
			return false
		}
	}
	return true
}

// Client returns a RESP3 cluster client seeded with all node addresses,
// closed at tb.Cleanup.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs, Protocol: 3})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// Stop stops every node and returns the first error.
func (c *Cluster) Stop() error {
	var first error
	for _, s := range c.Nodes {
		if err := s.Stop(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (c *Cluster) logs() string {
	var b strings.Builder
	for _, s := range c.Nodes {
		fmt.Fprintf(&b, "--- %s ---\n%s", s.Addr, s.Log())
	}
	return b.String()
}
