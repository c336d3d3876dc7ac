package push_test

import (
	"encoding/json"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/easgate/easgate/devices/redistest"
	"github.com/easgate/easgate/eas/push"
)

// ended waits for w to end and returns its reason; 0 when it is still
// running after a generous bound (a hang guard, not a timing assertion).
func ended(t *testing.T, w push.Wait, bound time.Duration) push.Reason {
	t.Helper()
	select {
	case <-w.Done():
		return w.Reason()
	case <-time.After(bound):
		return 0
	}
}

// TestRedisBroker: two instances share a Redis (standalone and Cluster):
// a newer Begin on one ends the older wait on the other at once, a late
// announcement of an older Begin ends nothing, and a Signal from either
// reaches the instance holding the wait.
func TestRedisBroker(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client func(t *testing.T) func() redis.UniversalClient
	}{
		{"standalone", func(t *testing.T) func() redis.UniversalClient {
			s := redistest.Start(t)
			return func() redis.UniversalClient { return s.Client(t) }
		}},
		{"cluster", func(t *testing.T) func() redis.UniversalClient {
			c := redistest.StartCluster(t, 3)
			return func() redis.UniversalClient { return c.Client(t) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			newClient := tc.client(t)
			ctx := t.Context()
			brokers := make([]*push.RedisBroker, 2)
			for i := range brokers {
				b, err := push.NewRedisBroker(ctx, newClient(), "", nil)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { b.Close() })
				brokers[i] = b
			}
			a, b := brokers[0], brokers[1]
			k := push.Key{User: "jane", Device: "dev1"}
			other := push.Key{User: "jane", Device: "dev2"}

			older, err := a.Begin(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			bystander, err := a.Begin(ctx, other)
			if err != nil {
				t.Fatal(err)
			}
			newer, err := b.Begin(ctx, k)
			if err != nil {
				t.Fatal(err)
			}
			if r := ended(t, older, 30*time.Second); r != push.Superseded {
				t.Fatalf("older wait on the other instance: reason %v, want superseded", r)
			}

			// A stale announcement (number 1, the older Begin's) must not
			// end the newer wait; a signal published after it proves it
			// was handled.
			stale, _ := json.Marshal(map[string]any{"k": "begin", "u": "jane", "d": "dev1", "n": 1})
			if err := newClient().Publish(ctx, push.DefaultChannel, stale).Err(); err != nil {
				t.Fatal(err)
			}
			if err := a.Signal(ctx, other, push.Wake); err != nil {
				t.Fatal(err)
			}
			if r := ended(t, bystander, 30*time.Second); r != push.Wake {
				t.Fatalf("woken wait: reason %v", r)
			}
			select {
			case <-newer.Done():
				t.Fatalf("a stale announcement ended the newer wait (%v)", newer.Reason())
			default:
			}

			// An admin signal sent through instance a reaches b's wait.
			if err := a.Signal(ctx, k, push.DeviceChanged); err != nil {
				t.Fatal(err)
			}
			if r := ended(t, newer, 30*time.Second); r != push.DeviceChanged {
				t.Fatalf("signalled wait on the other instance: reason %v", r)
			}
			for _, w := range []push.Wait{older, newer, bystander} {
				w.End()
			}

			// Same instant, many Begins across both instances: exactly
			// the one with the highest number survives.
			var waits []push.Wait
			for i := range 6 {
				w, err := brokers[i%2].Begin(ctx, k)
				if err != nil {
					t.Fatal(err)
				}
				waits = append(waits, w)
			}
			for i, w := range waits[:len(waits)-1] {
				if r := ended(t, w, 30*time.Second); r != push.Superseded {
					t.Fatalf("wait %d of 6: reason %v", i, r)
				}
			}
			last := waits[len(waits)-1]
			// Flush: a signal for another device after all announcements.
			w2, _ := b.Begin(ctx, other)
			if err := a.Signal(ctx, other, push.Wake); err != nil {
				t.Fatal(err)
			}
			ended(t, w2, 30*time.Second)
			select {
			case <-last.Done():
				t.Fatalf("the newest wait ended: %v", last.Reason())
			default:
			}
			if n := a.Len() + b.Len(); n != 1 {
				t.Fatalf("%d waits held, want 1", n)
			}
			last.End()
			w2.End()
		})
	}
}

// TestRedisBrokerResync: announcements lost while an instance's
// subscription was down are made up for when it comes back: a newer
// Begin elsewhere (only the counter moved) supersedes the wait held here,
// and a signal (only the signal key written) ends the next one.
func TestRedisBrokerResync(t *testing.T) {
	s := redistest.Start(t)
	ctx := t.Context()
	a, err := push.NewRedisBroker(ctx, s.Client(t), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	admin := s.Client(t)
	k := push.Key{User: "jane", Device: "dev1"}
	// dropSubscription cuts the pub/sub connection; go-redis reconnects
	// and resubscribes by itself.
	dropSubscription := func() {
		t.Helper()
		if err := admin.Do(ctx, "CLIENT", "KILL", "TYPE", "pubsub").Err(); err != nil {
			t.Fatal(err)
		}
	}

	w, err := a.Begin(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer w.End()
	// Another instance began a newer wait, and its message was lost.
	if err := admin.Incr(ctx, "eas:{jane}:push:dev1").Err(); err != nil {
		t.Fatal(err)
	}
	dropSubscription()
	if r := ended(t, w, 30*time.Second); r != push.Superseded {
		t.Fatalf("wait after a lost newer Begin: reason %v, want superseded", r)
	}

	w2, err := a.Begin(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.End()
	seq, err := admin.Get(ctx, "eas:{jane}:push:dev1").Result()
	if err != nil {
		t.Fatal(err)
	}
	// An administrator's wake for it, whose message was lost.
	if err := admin.Set(ctx, "eas:{jane}:pushsig:dev1", seq+" "+strconv.Itoa(int(push.Wake)), time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	dropSubscription()
	if r := ended(t, w2, 30*time.Second); r != push.Wake {
		t.Fatalf("wait after a lost wake: reason %v, want wake", r)
	}

	// A signal older than the wait ends nothing.
	w3, err := a.Begin(ctx, k)
	if err != nil {
		t.Fatal(err)
	}
	defer w3.End()
	dropSubscription()
	// The Begin of another device after the reconnection is heard: the
	// subscription works again, and w3 is still waiting.
	other := push.Key{User: "jane", Device: "dev2"}
	o1, err := a.Begin(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	b, err := push.NewRedisBroker(ctx, s.Client(t), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	o2, err := b.Begin(ctx, other)
	if err != nil {
		t.Fatal(err)
	}
	defer o2.End()
	if r := ended(t, o1, 30*time.Second); r != push.Superseded {
		t.Fatalf("wait of another device after the reconnection: reason %v, want superseded", r)
	}
	select {
	case <-w3.Done():
		t.Fatalf("wait begun after the stored signal ended: %v", w3.Reason())
	default:
	}
}
