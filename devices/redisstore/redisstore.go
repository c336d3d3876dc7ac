// Package redisstore implements devices.Store on Redis, so that several
// gateway instances share what they know about devices. It takes a
// redis.UniversalClient and works the same on one server and on a Redis
// Cluster.
//
// # Keys
//
// With the default prefix "eas", user U (escaped, see below) and device id D:
//
//	eas:{U}:devices   hash  D → the Device as JSON
//	eas:{U}:sync:D    hash  "m/"+C → "rev curKey prevKey updated" (decimal),
//	                        "c/"+C → current data, "p/"+C → previous data,
//	                        for every collection C of the device
//	eas:{U}:req:D     hash  kind → cached request body
//	eas:users         set   every user that has (or had) a device
//	eas:auth:K        hash  n (count), exp (Unix ms): one auth-failure counter
//
// All of a user's keys share the hash tag {U}, so they live in one Cluster
// slot, and every change that spans them is one Lua script or MULTI/EXEC.
// Keeping all collections of a device in one hash (rather than a key each)
// makes DeleteDevice a fixed set of three keys, with no index of
// collections to keep in step.
//
// User names are escaped for the key: bytes other than ASCII letters,
// digits and "._@-" become %XX, so a name holding "{", "}", ":" or "%"
// can neither break the hash tag nor collide with another name. Device ids
// and collection ids need no escaping: a device id is the last part of its
// key and a collection id follows a fixed two-byte field prefix.
//
// # Listing all devices
//
// The one key outside a user's slot is the set of users, read by
// ListDevices(""). A Cluster cannot change it in the same transaction as a
// user's devices, so the order of writes keeps it a superset of the users
// that have devices: a new device is added to its user's hash first and
// the user to the set after (and before, so a crash in between leaves at
// worst a user without devices, which listing skips); DeleteDevice removes
// the user from the set only when the user's last device is gone and then
// checks again, putting the user back if a device appeared meanwhile. The
// alternative, SCAN over every master, would walk the whole keyspace of a
// shared Redis for one admin page.
//
// # SyncKey compare-and-set
//
// PutSyncState is one Lua script implementing the rules in the devices
// package documentation (MS-ASCMD 2.2.3.166.4). Keys and revisions travel
// as decimal strings and are only compared as strings, because Lua numbers
// are doubles and cannot hold every uint64.
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/easgate/easgate/devices"
)

// DefaultPrefix starts every key the store writes.
const DefaultPrefix = "eas"

// maxUpdateAttempts bounds the compare-and-set loop of UpsertDevice. Every
// failed attempt means another writer succeeded, so it is only reached
// under a storm of writes to one device.
const maxUpdateAttempts = 100

// Store is a devices.Store in Redis.
type Store struct {
	rdb    redis.UniversalClient
	prefix string
	now    func() time.Time
}

var _ devices.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithPrefix makes every key start with prefix+":" instead of "eas:", so
// that several installations can share one Redis. The prefix must not
// contain "{" or "}" (they would change the Cluster hash tag).
func WithPrefix(prefix string) Option { return func(s *Store) { s.prefix = prefix } }

// WithClock makes the store read time from now instead of time.Now: for
// FirstSeen and LastSeen of new devices, SyncState.Updated and the expiry of
// auth-failure counters. Redis expires counters on its own clock as well,
// but only as garbage collection, well after the store's clock has.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// New returns a store on rdb, which it owns from now on: Close closes it.
func New(rdb redis.UniversalClient, opts ...Option) (*Store, error) {
	s := &Store{rdb: rdb, prefix: DefaultPrefix, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	if s.prefix == "" || strings.ContainsAny(s.prefix, "{}") {
		return nil, fmt.Errorf("%w: redis key prefix %q (must be non-empty, without braces)", devices.ErrInvalid, s.prefix)
	}
	return s, nil
}

// Close closes the Redis client.
func (s *Store) Close() error { return s.rdb.Close() }

// escape returns the form of a user name (or auth-counter key) used in a
// Redis key: see the package documentation.
func escape(user string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(user); i++ {
		c := user[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '.', c == '_', c == '@', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// Key names. userKey is the part every key of one user starts with.
func (s *Store) userKey(user string) string     { return s.prefix + ":{" + escape(user) + "}:" }
func (s *Store) devicesKey(user string) string  { return s.userKey(user) + "devices" }
func (s *Store) syncKey(user, id string) string { return s.userKey(user) + "sync:" + id }
func (s *Store) reqKey(user, id string) string  { return s.userKey(user) + "req:" + id }
func (s *Store) usersKey() string               { return s.prefix + ":users" }
func (s *Store) authKey(key string) string      { return s.prefix + ":auth:" + escape(key) }

func decodeDevice(v string) (*devices.Device, error) {
	var d devices.Device
	if err := json.Unmarshal([]byte(v), &d); err != nil {
		return nil, fmt.Errorf("redisstore: corrupt device record: %w", err)
	}
	return &d, nil
}

// GetDevice implements devices.Store.
func (s *Store) GetDevice(ctx context.Context, user, device string) (*devices.Device, error) {
	id, err := devices.CheckIDs(user, device)
	if err != nil {
		return nil, err
	}
	v, err := s.rdb.HGet(ctx, s.devicesKey(user), id).Result()
	if errors.Is(err, redis.Nil) {
		return nil, devices.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	return decodeDevice(v)
}

// casDevice writes ARGV[3] as field ARGV[1] of KEYS[1] if the field still
// holds ARGV[2], or if it is absent and ARGV[2] is empty (a JSON record is
// never empty). It returns 1 on success, 0 if the field changed.
var casDevice = redis.NewScript(`
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[2] == '' then
  if cur then return 0 end
elseif cur ~= ARGV[2] then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
`)

// UpsertDevice implements devices.Store.
func (s *Store) UpsertDevice(ctx context.Context, user, device string, fn func(*devices.Device) error) (*devices.Device, error) {
	return s.updateDevice(ctx, user, device, true, fn)
}

// UpdateDevice implements devices.Store.
func (s *Store) UpdateDevice(ctx context.Context, user, device string, fn func(*devices.Device) error) (*devices.Device, error) {
	return s.updateDevice(ctx, user, device, false, fn)
}

// updateDevice reads the record, applies fn and writes the result with
// casDevice, starting over when another writer got in between.
func (s *Store) updateDevice(ctx context.Context, user, device string, create bool, fn func(*devices.Device) error) (*devices.Device, error) {
	id, err := devices.CheckIDs(user, device)
	if err != nil {
		return nil, err
	}
	key := s.devicesKey(user)
	for range maxUpdateAttempts {
		old, err := s.rdb.HGet(ctx, key, id).Result()
		var cur *devices.Device
		switch {
		case errors.Is(err, redis.Nil):
			if !create {
				return nil, devices.ErrNotFound
			}
			old = ""
		case err != nil:
			return nil, fmt.Errorf("redisstore: %w", err)
		default:
			if cur, err = decodeDevice(old); err != nil {
				return nil, err
			}
		}
		d, changed, err := devices.ApplyUpdate(cur, user, id, s.now(), fn)
		if err != nil {
			return nil, err
		}
		if !changed {
			return d, nil
		}
		v, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("redisstore: encode device: %w", err)
		}
		if cur == nil {
			// Before the device exists (see the package documentation).
			if err := s.rdb.SAdd(ctx, s.usersKey(), user).Err(); err != nil {
				return nil, fmt.Errorf("redisstore: %w", err)
			}
		}
		ok, err := casDevice.Run(ctx, s.rdb, []string{key}, id, old, v).Int()
		if err != nil {
			return nil, fmt.Errorf("redisstore: %w", err)
		}
		if ok == 0 {
			continue
		}
		if cur == nil {
			// And after, in case a DeleteDevice of the user's last other
			// device removed the user in between.
			if err := s.rdb.SAdd(ctx, s.usersKey(), user).Err(); err != nil {
				return nil, fmt.Errorf("redisstore: %w", err)
			}
		}
		return d, nil
	}
	return nil, fmt.Errorf("%w: device %q of %q changed %d times during update", devices.ErrConflict, id, user, maxUpdateAttempts)
}

// ListDevices implements devices.Store.
func (s *Store) ListDevices(ctx context.Context, user string) ([]*devices.Device, error) {
	users := []string{user}
	if user == "" {
		var err error
		if users, err = s.rdb.SMembers(ctx, s.usersKey()).Result(); err != nil {
			return nil, fmt.Errorf("redisstore: %w", err)
		}
	}
	cmds := make([]*redis.MapStringStringCmd, len(users))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, u := range users {
			cmds[i] = p.HGetAll(ctx, s.devicesKey(u))
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	var out []*devices.Device
	for _, c := range cmds {
		for _, v := range c.Val() {
			d, err := decodeDevice(v)
			if err != nil {
				return nil, err
			}
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b *devices.Device) int {
		if c := strings.Compare(a.User, b.User); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out, nil
}

// deleteDevice removes field ARGV[1] of KEYS[1] (the user's devices) and the
// keys KEYS[2] (sync states) and KEYS[3] (cached requests). It returns
// {1 if the record existed else 0, devices the user has left}.
var deleteDevice = redis.NewScript(`
local had = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2], KEYS[3])
return {had, redis.call('HLEN', KEYS[1])}
`)

// DeleteDevice implements devices.Store.
func (s *Store) DeleteDevice(ctx context.Context, user, device string) error {
	id, err := devices.CheckIDs(user, device)
	if err != nil {
		return err
	}
	devKey := s.devicesKey(user)
	res, err := deleteDevice.Run(ctx, s.rdb, []string{devKey, s.syncKey(user, id), s.reqKey(user, id)}, id).Int64Slice()
	if err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	if len(res) != 2 {
		return fmt.Errorf("redisstore: delete script returned %v", res)
	}
	if res[1] == 0 {
		// The user's last device: drop the user from the set, then look
		// again in case a device was created meanwhile.
		if err := s.rdb.SRem(ctx, s.usersKey(), user).Err(); err != nil {
			return fmt.Errorf("redisstore: %w", err)
		}
		n, err := s.rdb.HLen(ctx, devKey).Result()
		if err != nil {
			return fmt.Errorf("redisstore: %w", err)
		}
		if n > 0 {
			if err := s.rdb.SAdd(ctx, s.usersKey(), user).Err(); err != nil {
				return fmt.Errorf("redisstore: %w", err)
			}
		}
	}
	if res[0] == 0 {
		return devices.ErrNotFound
	}
	return nil
}

// PutCachedRequest implements devices.Store.
func (s *Store) PutCachedRequest(ctx context.Context, user, device, kind string, body []byte) error {
	id, err := devices.CheckCachedRequest(user, device, kind)
	if err != nil {
		return err
	}
	if len(body) == 0 {
		err = s.rdb.HDel(ctx, s.reqKey(user, id), kind).Err()
	} else {
		err = s.rdb.HSet(ctx, s.reqKey(user, id), kind, body).Err()
	}
	if err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	return nil
}

// GetCachedRequest implements devices.Store.
func (s *Store) GetCachedRequest(ctx context.Context, user, device, kind string) ([]byte, error) {
	id, err := devices.CheckCachedRequest(user, device, kind)
	if err != nil {
		return nil, err
	}
	b, err := s.rdb.HGet(ctx, s.reqKey(user, id), kind).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, devices.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	return b, nil
}

// incrAuth counts one failure in KEYS[1]: the old count survives only if its
// expiry ARGV[2] (Unix ms, the store's clock) is after now, ARGV[1]. Redis
// itself drops the key ARGV[3] ms after the last failure.
var incrAuth = redis.NewScript(`
local n = 0
local v = redis.call('HMGET', KEYS[1], 'n', 'exp')
if v[1] and v[2] and tonumber(v[2]) > tonumber(ARGV[1]) then n = tonumber(v[1]) end
n = n + 1
redis.call('HSET', KEYS[1], 'n', n, 'exp', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return n
`)

// IncrAuthFailures implements devices.Store. Each failure renews the
// counter's life to ttl.
func (s *Store) IncrAuthFailures(ctx context.Context, key string, ttl time.Duration) (int, error) {
	if err := devices.CheckCounterIncr(key, ttl); err != nil {
		return 0, err
	}
	now := s.now().UnixMilli()
	ms := max(ttl.Milliseconds(), 1)
	n, err := incrAuth.Run(ctx, s.rdb, []string{s.authKey(key)}, now, now+ms, ms).Int()
	if err != nil {
		return 0, fmt.Errorf("redisstore: %w", err)
	}
	return n, nil
}

// AuthFailures implements devices.Store.
func (s *Store) AuthFailures(ctx context.Context, key string) (int, error) {
	if err := devices.CheckCounterKey(key); err != nil {
		return 0, err
	}
	v, err := s.rdb.HMGet(ctx, s.authKey(key), "n", "exp").Result()
	if err != nil {
		return 0, fmt.Errorf("redisstore: %w", err)
	}
	ns, _ := v[0].(string)
	es, _ := v[1].(string)
	n, err1 := strconv.Atoi(ns)
	exp, err2 := strconv.ParseInt(es, 10, 64)
	if err1 != nil || err2 != nil || exp <= s.now().UnixMilli() {
		return 0, nil
	}
	return n, nil
}

// ResetAuthFailures implements devices.Store.
func (s *Store) ResetAuthFailures(ctx context.Context, key string) error {
	if err := devices.CheckCounterKey(key); err != nil {
		return err
	}
	if err := s.rdb.Del(ctx, s.authKey(key)).Err(); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	return nil
}
