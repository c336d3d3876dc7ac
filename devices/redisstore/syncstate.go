package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/easgate/easgate/devices"
)

// getState returns, from the sync hash KEYS[1] and collection ARGV[1], the
// state whose key is ARGV[2] (current or previous; the current one if
// ARGV[2] is empty) as {key, data, rev, updated}, or nil.
var getState = redis.NewScript(`
local f = ARGV[1]
local m = redis.call('HGET', KEYS[1], 'm/' .. f)
if not m then return false end
local rev, ck, pk, t = string.match(m, '^(%d+) (%d+) (%d+) (%-?%d+)$')
if not rev then return redis.error_reply('corrupt sync state meta') end
if ARGV[2] == '' or ARGV[2] == ck then
  return {ck, redis.call('HGET', KEYS[1], 'c/' .. f) or '', rev, t}
end
if pk ~= '0' and ARGV[2] == pk then
  return {pk, redis.call('HGET', KEYS[1], 'p/' .. f) or '', rev, t}
end
return false
`)

// putState is the SyncKey compare-and-set (MS-ASCMD 2.2.3.166.4) on the
// sync hash KEYS[1], collection ARGV[1]. ARGV[2] is the base key (” for a
// reset), ARGV[3] the base revision, ARGV[4] and ARGV[5] the next key and
// data, ARGV[6] the new revision, ARGV[7] the time. It returns 1 when
// written, 0 when the base no longer matches.
//
//   - reset: the previous state is dropped;
//   - base is current: the current state becomes the previous one;
//   - base is previous (the client repeated it): the previous state stays.
var putState = redis.NewScript(`
local f = ARGV[1]
local pk = '0'
if ARGV[2] ~= '' then
  local m = redis.call('HGET', KEYS[1], 'm/' .. f)
  if not m then return 0 end
  local rev, ck, opk = string.match(m, '^(%d+) (%d+) (%d+) ')
  if rev ~= ARGV[3] then return 0 end
  if ARGV[2] == ck then
    pk = ck
    redis.call('HSET', KEYS[1], 'p/' .. f, redis.call('HGET', KEYS[1], 'c/' .. f) or '')
  elseif opk ~= '0' and ARGV[2] == opk then
    pk = opk
  else
    return 0
  end
else
  redis.call('HDEL', KEYS[1], 'p/' .. f)
end
redis.call('HSET', KEYS[1], 'm/' .. f, ARGV[6] .. ' ' .. ARGV[4] .. ' ' .. pk .. ' ' .. ARGV[7], 'c/' .. f, ARGV[5])
return 1
`)

func (s *Store) runGetState(ctx context.Context, user, device, coll, key string) (*devices.SyncState, error) {
	id, err := devices.CheckIDs(user, device)
	if err != nil {
		return nil, err
	}
	res, err := getState.Run(ctx, s.rdb, []string{s.syncKey(user, id)}, coll, key).Slice()
	if errors.Is(err, redis.Nil) {
		return nil, devices.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	st, err := parseState(res)
	if err != nil {
		return nil, fmt.Errorf("redisstore: sync state %q/%q/%q: %w", user, id, coll, err)
	}
	return st, nil
}

func parseState(res []any) (*devices.SyncState, error) {
	if len(res) != 4 {
		return nil, fmt.Errorf("script returned %d values", len(res))
	}
	var f [4]string
	for i, v := range res {
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("script returned %T", v)
		}
		f[i] = s
	}
	key, err1 := strconv.ParseUint(f[0], 10, 64)
	rev, err2 := strconv.ParseUint(f[2], 10, 64)
	t, err3 := strconv.ParseInt(f[3], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	return &devices.SyncState{Key: key, Data: []byte(f[1]), Revision: rev, Updated: time.Unix(0, t).UTC()}, nil
}

// GetSyncState implements devices.Store.
func (s *Store) GetSyncState(ctx context.Context, user, device, collection string, key uint64) (*devices.SyncState, error) {
	if key == 0 {
		if _, err := devices.CheckIDs(user, device); err != nil {
			return nil, err
		}
		return nil, devices.ErrNotFound
	}
	return s.runGetState(ctx, user, device, collection, strconv.FormatUint(key, 10))
}

// LatestSyncState implements devices.Store.
func (s *Store) LatestSyncState(ctx context.Context, user, device, collection string) (*devices.SyncState, error) {
	return s.runGetState(ctx, user, device, collection, "")
}

// newRev returns a fresh write token. It is random rather than counted so
// that a base read before a collection was deleted cannot match the
// collection written after.
func newRev() uint64 {
	for {
		if r := rand.Uint64(); r != 0 {
			return r
		}
	}
}

// PutSyncState implements devices.Store.
func (s *Store) PutSyncState(ctx context.Context, user, device, collection string, base, next *devices.SyncState) error {
	id, err := devices.CheckSyncPut(user, device, base, next)
	if err != nil {
		return err
	}
	baseKey, baseRev := "", ""
	if base != nil {
		baseKey, baseRev = strconv.FormatUint(base.Key, 10), strconv.FormatUint(base.Revision, 10)
	}
	data := next.Data
	if data == nil {
		data = []byte{} // go-redis would send nil as ""; be explicit
	}
	ok, err := putState.Run(ctx, s.rdb, []string{s.syncKey(user, id)},
		collection, baseKey, baseRev, strconv.FormatUint(next.Key, 10), data,
		strconv.FormatUint(newRev(), 10), strconv.FormatInt(s.now().UnixNano(), 10)).Int()
	if err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	if ok == 0 {
		return devices.ErrConflict
	}
	return nil
}

// DeleteSyncStates implements devices.Store: one HDEL, atomic.
func (s *Store) DeleteSyncStates(ctx context.Context, user, device string, collections ...string) error {
	id, err := devices.CheckIDs(user, device)
	if err != nil {
		return err
	}
	if len(collections) == 0 {
		return nil
	}
	fields := make([]string, 0, 3*len(collections))
	for _, c := range collections {
		fields = append(fields, "m/"+c, "c/"+c, "p/"+c)
	}
	if err := s.rdb.HDel(ctx, s.syncKey(user, id), fields...).Err(); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	return nil
}

// SyncCollections implements devices.Store.
func (s *Store) SyncCollections(ctx context.Context, user, device string) ([]string, error) {
	id, err := devices.CheckIDs(user, device)
	if err != nil {
		return nil, err
	}
	fields, err := s.rdb.HKeys(ctx, s.syncKey(user, id)).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: %w", err)
	}
	var out []string
	for _, f := range fields {
		if c, ok := strings.CutPrefix(f, "m/"); ok {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out, nil
}
