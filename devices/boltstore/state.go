package boltstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	bolt "go.etcd.io/bbolt"

	"github.com/easgate/easgate/devices"
)

// collState is what one collection keeps: its write token, when it was
// written, and the current and (optional) previous SyncKey with their data.
type collState struct {
	rev     uint64
	updated int64 // Unix nanoseconds
	curKey  uint64
	cur     []byte
	prevKey uint64 // 0 when there is no previous state
	prev    []byte
}

const stateFormat = 1

// encodeState lays a collState out as: format byte, rev, updated, curKey,
// prevKey (8 bytes each, big-endian), then the current data's length as a
// uvarint, the current data, and the previous data.
func encodeState(st *collState) []byte {
	b := make([]byte, 0, 1+4*8+binary.MaxVarintLen64+len(st.cur)+len(st.prev))
	b = append(b, stateFormat)
	b = binary.BigEndian.AppendUint64(b, st.rev)
	b = binary.BigEndian.AppendUint64(b, uint64(st.updated))
	b = binary.BigEndian.AppendUint64(b, st.curKey)
	b = binary.BigEndian.AppendUint64(b, st.prevKey)
	b = binary.AppendUvarint(b, uint64(len(st.cur)))
	b = append(b, st.cur...)
	return append(b, st.prev...)
}

var errCorrupt = errors.New("boltstore: corrupt sync state")

// decodeState parses encodeState's output. The data slices alias v, which
// bbolt only keeps valid for the transaction: copy what escapes it.
func decodeState(v []byte) (*collState, error) {
	if len(v) < 1+4*8 || v[0] != stateFormat {
		return nil, errCorrupt
	}
	st := &collState{
		rev:     binary.BigEndian.Uint64(v[1:]),
		updated: int64(binary.BigEndian.Uint64(v[9:])),
		curKey:  binary.BigEndian.Uint64(v[17:]),
		prevKey: binary.BigEndian.Uint64(v[25:]),
	}
	rest := v[33:]
	n, w := binary.Uvarint(rest)
	if w <= 0 || n > uint64(len(rest)-w) {
		return nil, errCorrupt
	}
	rest = rest[w:]
	st.cur, st.prev = rest[:n], rest[n:]
	return st, nil
}

func collKey(coll string) []byte { return append([]byte{'c'}, coll...) }

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

// loadState returns the collection's state inside tx, or nil.
func loadState(tx *bolt.Tx, user, id, coll string) (*collState, error) {
	sb := subBucket(tx, user, id, bucketSync)
	if sb == nil {
		return nil, nil
	}
	v := sb.Get(collKey(coll))
	if v == nil {
		return nil, nil
	}
	st, err := decodeState(v)
	if err != nil {
		return nil, fmt.Errorf("%w (%q/%q/%q)", err, user, id, coll)
	}
	return st, nil
}

func (s *Store) getState(ctx context.Context, user, device, coll string, pick func(*collState) (uint64, []byte, bool)) (*devices.SyncState, error) {
	id, err := devices.CheckIDs(user, device)
	if err != nil {
		return nil, err
	}
	var out *devices.SyncState
	err = s.view(ctx, func(tx *bolt.Tx) error {
		st, err := loadState(tx, user, id, coll)
		if err != nil {
			return err
		}
		if st == nil {
			return devices.ErrNotFound
		}
		key, data, ok := pick(st)
		if !ok {
			return devices.ErrNotFound
		}
		out = &devices.SyncState{Key: key, Data: slices.Clone(data), Updated: unixTime(st.updated), Revision: st.rev}
		return nil
	})
	return out, err
}

// GetSyncState implements devices.Store.
func (s *Store) GetSyncState(ctx context.Context, user, device, collection string, key uint64) (*devices.SyncState, error) {
	return s.getState(ctx, user, device, collection, func(st *collState) (uint64, []byte, bool) {
		switch {
		case key == 0:
			return 0, nil, false
		case key == st.curKey:
			return st.curKey, st.cur, true
		case key == st.prevKey:
			return st.prevKey, st.prev, true
		}
		return 0, nil, false
	})
}

// LatestSyncState implements devices.Store.
func (s *Store) LatestSyncState(ctx context.Context, user, device, collection string) (*devices.SyncState, error) {
	return s.getState(ctx, user, device, collection, func(st *collState) (uint64, []byte, bool) {
		return st.curKey, st.cur, true
	})
}

// PutSyncState implements devices.Store: the compare-and-set of the
// package documentation of devices (MS-ASCMD 2.2.3.166.4), inside one write
// transaction.
func (s *Store) PutSyncState(ctx context.Context, user, device, collection string, base, next *devices.SyncState) error {
	id, err := devices.CheckSyncPut(user, device, base, next)
	if err != nil {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		st := &collState{}
		if base != nil {
			old, err := loadState(tx, user, id, collection)
			if err != nil {
				return err
			}
			if old == nil || old.rev != base.Revision {
				return devices.ErrConflict
			}
			switch base.Key {
			case old.curKey: // advance: current becomes previous
				st.prevKey, st.prev = old.curKey, old.cur
			case old.prevKey: // the client repeated the previous key: keep it
				st.prevKey, st.prev = old.prevKey, old.prev
			default:
				return devices.ErrConflict
			}
		}
		st.rev = newRev()
		st.updated = s.now().UnixNano()
		st.curKey, st.cur = next.Key, next.Data
		sb, err := createSubBucket(tx, user, id, bucketSync)
		if err != nil {
			return err
		}
		return sb.Put(collKey(collection), encodeState(st))
	})
}

// DeleteSyncStates implements devices.Store.
func (s *Store) DeleteSyncStates(ctx context.Context, user, device string, collections ...string) error {
	id, err := devices.CheckIDs(user, device)
	if err != nil {
		return err
	}
	if len(collections) == 0 {
		return nil
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		sb := subBucket(tx, user, id, bucketSync)
		if sb == nil {
			return nil
		}
		for _, c := range collections {
			if err := sb.Delete(collKey(c)); err != nil {
				return err
			}
		}
		return nil
	})
}

// SyncCollections implements devices.Store.
func (s *Store) SyncCollections(ctx context.Context, user, device string) ([]string, error) {
	id, err := devices.CheckIDs(user, device)
	if err != nil {
		return nil, err
	}
	var out []string
	err = s.view(ctx, func(tx *bolt.Tx) error {
		sb := subBucket(tx, user, id, bucketSync)
		if sb == nil {
			return nil
		}
		return sb.ForEach(func(k, _ []byte) error {
			out = append(out, string(k[1:]))
			return nil
		})
	})
	return out, err
}
