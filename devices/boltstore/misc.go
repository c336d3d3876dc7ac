package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/easgate/easgate/devices"
)

// PutCachedRequest implements devices.Store.
func (s *Store) PutCachedRequest(ctx context.Context, user, device, kind string, body []byte) error {
	id, err := devices.CheckCachedRequest(user, device, kind)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		if len(body) == 0 {
			if rb := subBucket(tx, user, id, bucketReq); rb != nil {
				return rb.Delete([]byte(kind))
			}
			return nil
		}
		rb, err := createSubBucket(tx, user, id, bucketReq)
		if err != nil {
			return err
		}
		return rb.Put([]byte(kind), bytes.Clone(body))
	})
}

// GetCachedRequest implements devices.Store.
func (s *Store) GetCachedRequest(ctx context.Context, user, device, kind string) ([]byte, error) {
	id, err := devices.CheckCachedRequest(user, device, kind)
	if err != nil {
		return nil, err
	}
	var out []byte
	err = s.view(ctx, func(tx *bolt.Tx) error {
		rb := subBucket(tx, user, id, bucketReq)
		if rb == nil {
			return devices.ErrNotFound
		}
		v := rb.Get([]byte(kind))
		if v == nil {
			return devices.ErrNotFound
		}
		out = bytes.Clone(v)
		return nil
	})
	return out, err
}

// An auth-failure counter is stored as count (8 bytes) and expiry in Unix
// nanoseconds (8 bytes), big-endian.
func encodeCounter(n uint64, exp int64) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), n)
	return binary.BigEndian.AppendUint64(b, uint64(exp))
}

// liveCount returns the count of an encoded counter, 0 if it has expired at
// now or is malformed.
func liveCount(v []byte, now int64) uint64 {
	if len(v) != 16 || int64(binary.BigEndian.Uint64(v[8:])) <= now {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// IncrAuthFailures implements devices.Store. Each failure renews the
// counter's life to ttl. Every sweepEvery calls, expired counters are
// dropped in the same transaction so the bucket does not grow without end.
func (s *Store) IncrAuthFailures(ctx context.Context, key string, ttl time.Duration) (int, error) {
	if err := devices.CheckCounterIncr(key, ttl); err != nil {
		return 0, err
	}
	sweep := s.incrs.Add(1)%sweepEvery == 0
	var n uint64
	err := s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAuth)
		now := s.now().UnixNano()
		if sweep {
			if err := sweepExpired(b, now); err != nil {
				return err
			}
		}
		n = liveCount(b.Get([]byte(key)), now) + 1
		return b.Put([]byte(key), encodeCounter(n, now+int64(ttl)))
	})
	return int(n), err
}

// sweepExpired deletes the counters in b that have expired at now.
func sweepExpired(b *bolt.Bucket, now int64) error {
	var dead [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if liveCount(v, now) == 0 {
			dead = append(dead, bytes.Clone(k))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range dead {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// AuthFailures implements devices.Store.
func (s *Store) AuthFailures(ctx context.Context, key string) (int, error) {
	if err := devices.CheckCounterKey(key); err != nil {
		return 0, err
	}
	var n uint64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		n = liveCount(tx.Bucket(bucketAuth).Get([]byte(key)), s.now().UnixNano())
		return nil
	})
	return int(n), err
}

// ResetAuthFailures implements devices.Store.
func (s *Store) ResetAuthFailures(ctx context.Context, key string) error {
	if err := devices.CheckCounterKey(key); err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error { return tx.Bucket(bucketAuth).Delete([]byte(key)) })
}

func unixTime(ns int64) time.Time { return time.Unix(0, ns).UTC() }
