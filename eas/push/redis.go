package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultChannel is the Redis pub/sub channel RedisBroker uses.
const DefaultChannel = "easgate:push"

// seqTTL is how long a device's sequence counter outlives its last Begin:
// far beyond the longest heartbeat, so no wait can outlive its counter.
const seqTTL = 24 * time.Hour

// resyncTimeout bounds reading the waits' state after a reconnection.
const resyncTimeout = 30 * time.Second

// RedisBroker is the Broker for gateway instances sharing a Redis: each
// instance holds its own waits in a Registry, and announces every Begin
// and every Signal on one pub/sub channel that all instances subscribe
// to, so the instance holding the device's wait ends it at once.
//
// Ordering: each Begin takes the next number of the device's counter
// (INCR on eas:{user}:push:device) and a wait is only ended by a
// higher number. Two Pings of one device in the same second, on two
// instances, thus end the right one however the announcements travel;
// after registering its wait, Begin reads the counter again, which
// catches a newer Begin announced before the wait was registered.
//
// Redis Cluster: the counter is one key per command (its hash tag is the
// user, as in devices/redisstore). The channel is a plain (not sharded)
// channel: PUBLISH reaches the subscribers of every node, so each
// instance subscribes once to one well-known channel and needs no
// knowledge of slots; the cost is one small message per Ping per node,
// which suits the tens of nodes a gateway deployment has. Sharded pub/sub
// (SPUBLISH) would confine messages to one shard, but then every instance
// must subscribe on every shard (or per device), which is the same
// traffic with more moving parts.
//
// Messages published while an instance's subscription is reconnecting are
// lost. The state they announce is in Redis too (the counter, and the
// device's last signal under eas:{user}:pushsig:device), so after every
// reconnection the instance reads both for each wait it holds and ends
// the ones a lost message would have ended (resync).
type RedisBroker struct {
	rdb     redis.UniversalClient
	prefix  string
	channel string
	log     *slog.Logger
	local   Registry
	ps      *redis.PubSub
	done    chan struct{}
	once    sync.Once
}

// redisMessage is what RedisBroker publishes.
type redisMessage struct {
	Kind   string `json:"k"` // "begin" or "signal"
	User   string `json:"u"`
	Device string `json:"d"`
	Seq    uint64 `json:"n"`           // the wait's number; for a signal, the highest it ends
	Reason Reason `json:"r,omitempty"` // signal
}

// NewRedisBroker subscribes to DefaultChannel and returns the broker;
// prefix starts the counter keys ("eas" when empty, as devices/redisstore;
// no braces). Close
// it to unsubscribe.
func NewRedisBroker(ctx context.Context, rdb redis.UniversalClient, prefix string, log *slog.Logger) (*RedisBroker, error) {
	if prefix == "" {
		prefix = "eas"
	}
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("push: redis key prefix %q has braces", prefix)
	}
	if log == nil {
		log = slog.Default()
	}
	b := &RedisBroker{rdb: rdb, prefix: prefix, channel: DefaultChannel, log: log, done: make(chan struct{})}
	b.ps = rdb.Subscribe(ctx, b.channel)
	// Wait for the confirmation: a Begin after New must be heard.
	if _, err := b.ps.Receive(ctx); err != nil {
		b.ps.Close()
		return nil, fmt.Errorf("push: subscribing to %s: %w", b.channel, err)
	}
	go b.receive()
	return b, nil
}

// seqKey is the device's sequence counter.
func (b *RedisBroker) seqKey(k Key) string {
	return b.prefix + ":{" + keyEscape(k.User) + "}:push:" + keyEscape(k.Device)
}

// Begin implements Broker.
func (b *RedisBroker) Begin(ctx context.Context, k Key) (Wait, error) {
	key := b.seqKey(k)
	var incr *redis.IntCmd
	if _, err := b.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		incr = p.Incr(ctx, key)
		p.Expire(ctx, key, seqTTL)
		return nil
	}); err != nil {
		return nil, fmt.Errorf("push: numbering the wait: %w", err)
	}
	seq := uint64(incr.Val())
	w := b.local.BeginSeq(k, seq)
	msg, err := json.Marshal(redisMessage{Kind: "begin", User: k.User, Device: k.Device, Seq: seq})
	if err != nil {
		w.End()
		return nil, err
	}
	var get *redis.StringCmd
	if _, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Publish(ctx, b.channel, msg)
		get = p.Get(ctx, key)
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		w.End()
		return nil, fmt.Errorf("push: announcing the wait: %w", err)
	}
	if now, err := get.Uint64(); err == nil && now > seq {
		// A newer Begin was announced before this wait was held here.
		b.local.Supersede(k, now)
	}
	return w, nil
}

// Signal implements Broker: every instance ends its wait for k, this one
// included. The signal carries the device's number as it is now, so it
// never ends a wait begun after it (its announcement may arrive late).
func (b *RedisBroker) Signal(ctx context.Context, k Key, reason Reason) error {
	seq, err := b.rdb.Get(ctx, b.seqKey(k)).Uint64()
	if errors.Is(err, redis.Nil) {
		return nil // the device never waited (or not for a day)
	}
	if err != nil {
		return fmt.Errorf("push: reading the wait number: %w", err)
	}
	b.local.signalUpTo(k, seq, reason)
	msg, err := json.Marshal(redisMessage{Kind: "signal", User: k.User, Device: k.Device, Seq: seq, Reason: reason})
	if err != nil {
		return err
	}
	if _, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, b.signalKey(k), formatSignal(seq, reason), seqTTL)
		// The counter lives as long as the signal: a counter that
		// expired first would start again below the stored signal,
		// which a resync would then apply to a newer wait.
		p.Expire(ctx, b.seqKey(k), seqTTL)
		p.Publish(ctx, b.channel, msg)
		return nil
	}); err != nil {
		return fmt.Errorf("push: announcing %v: %w", reason, err)
	}
	return nil
}

// signalKey holds the device's last signal, for resync.
func (b *RedisBroker) signalKey(k Key) string {
	return b.prefix + ":{" + keyEscape(k.User) + "}:pushsig:" + keyEscape(k.Device)
}

// formatSignal and parseSignal are the signal key's value: "seq reason".
func formatSignal(seq uint64, reason Reason) string {
	return strconv.FormatUint(seq, 10) + " " + strconv.Itoa(int(reason))
}

func parseSignal(v string) (seq uint64, reason Reason, ok bool) {
	a, b, found := strings.Cut(v, " ")
	n, err1 := strconv.ParseUint(a, 10, 64)
	r, err2 := strconv.Atoi(b)
	if !found || err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return n, Reason(r), true
}

// resync ends the waits held here that a message lost while the
// subscription was down would have ended: a newer Begin (the counter
// moved past the wait's number) or a signal for it.
func (b *RedisBroker) resync(ctx context.Context) {
	held := b.local.held()
	if len(held) == 0 {
		return
	}
	counters := make([]*redis.StringCmd, len(held))
	signals := make([]*redis.StringCmd, len(held))
	if _, err := b.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, h := range held {
			counters[i] = p.Get(ctx, b.seqKey(h.k))
			signals[i] = p.Get(ctx, b.signalKey(h.k))
		}
		return nil
	}); err != nil && !errors.Is(err, redis.Nil) {
		b.log.Warn("push: reading the waits' state after reconnecting failed", "err", err)
		return
	}
	ended := 0
	for i, h := range held {
		if now, err := counters[i].Uint64(); err == nil && now > h.seq && b.local.Supersede(h.k, now) {
			ended++
			continue
		}
		v, err := signals[i].Result()
		if err != nil {
			continue
		}
		if seq, reason, ok := parseSignal(v); ok && seq >= h.seq && (reason == DeviceChanged || reason == Wake) &&
			b.local.signalUpTo(h.k, seq, reason) {
			ended++
		}
	}
	b.log.Info("push: subscription back; waits checked", "held", len(held), "ended", ended)
}

// Shutdown implements Broker for the waits of this instance.
func (b *RedisBroker) Shutdown() { b.local.Shutdown() }

// Len returns how many waits this instance holds.
func (b *RedisBroker) Len() int { return b.local.Len() }

// Close unsubscribes; the Redis client stays open.
func (b *RedisBroker) Close() error {
	var err error
	b.once.Do(func() {
		err = b.ps.Close()
		<-b.done
	})
	return err
}

// receive applies the announcements of all instances to the local waits,
// and resyncs after each reconnection (go-redis resubscribes by itself
// and reports it with a Subscription).
func (b *RedisBroker) receive() {
	defer close(b.done)
	for v := range b.ps.ChannelWithSubscriptions() {
		m, ok := v.(*redis.Message)
		if !ok {
			if sub, ok := v.(*redis.Subscription); ok && sub.Kind == "subscribe" {
				ctx, cancel := context.WithTimeout(context.Background(), resyncTimeout)
				b.resync(ctx)
				cancel()
			}
			continue
		}
		var msg redisMessage
		if err := json.Unmarshal([]byte(m.Payload), &msg); err != nil {
			b.log.Warn("push: unreadable message on the channel", "channel", m.Channel, "err", err)
			continue
		}
		k := Key{User: msg.User, Device: msg.Device}
		switch msg.Kind {
		case "begin":
			b.local.Supersede(k, msg.Seq)
		case "signal":
			if msg.Reason == DeviceChanged || msg.Reason == Wake {
				b.local.signalUpTo(k, msg.Seq, msg.Reason)
			}
		}
	}
}

// keyEscape keeps a name safe inside a Redis key: braces (hash tags),
// colons (the separator) and bytes outside printable ASCII are
// percent-encoded.
func keyEscape(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '{' || c == '}' || c == ':' || c == '%' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
