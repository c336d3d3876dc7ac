// Package boltstore implements devices.Store in one bbolt file, for a
// gateway that runs as a single process and wants no Redis. Every method is
// one bbolt transaction, so every change is atomic and durable when it
// returns; write transactions are serialised by bbolt itself, which makes the
// compare-and-set of sync keys trivially safe.
//
// Layout of the file (bucket names in quotes, keys in angle brackets):
//
//	"users" / <user> / <device id> / "device"        the Device as JSON
//	                                / "sync" / "c"+<collection>  sync state (encodeState)
//	                                / "req"  / <kind>            cached request body
//	"auth" / <counter key>                           count and expiry (16 bytes)
//
// User names, device ids and collection ids are used as raw bytes: bbolt
// keys need no escaping. Collection keys carry a "c" prefix because bbolt
// refuses empty keys and devices.HierarchyCollection is "".
package boltstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/easgate/easgate/devices"
)

var (
	bucketUsers = []byte("users")
	bucketAuth  = []byte("auth")
	bucketSync  = []byte("sync")
	bucketReq   = []byte("req")
	keyDevice   = []byte("device")
)

// sweepEvery is how many IncrAuthFailures calls pass between sweeps that
// drop expired counters from the file.
const sweepEvery = 256

// Store is a devices.Store in a bbolt file.
type Store struct {
	db    *bolt.DB
	now   func() time.Time
	incrs atomic.Uint64 // IncrAuthFailures calls, for sweeping
}

var _ devices.Store = (*Store)(nil)

// Option configures a Store.
type Option func(*Store)

// WithClock makes the store read time from now instead of time.Now: for
// FirstSeen and LastSeen of new devices, SyncState.Updated and the expiry of
// auth-failure counters. Tests use it to move time without sleeping.
func WithClock(now func() time.Time) Option { return func(s *Store) { s.now = now } }

// Open opens (creating if needed) the store file at path; its directory is
// created too. A file held open by another process is reported as an error
// after a second rather than waited on forever.
func Open(path string, opts ...Option) (*Store, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("boltstore: %w", err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("boltstore: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketUsers, bucketAuth} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: init %s: %w", path, err)
	}
	s := &Store{db: db, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// view and update run fn in a read or write transaction after checking ctx:
// bbolt transactions cannot be interrupted, but they are short.
func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(fn)
}

func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(fn)
}

// deviceBucket returns the bucket of one device, or nil if it does not
// exist.
func deviceBucket(tx *bolt.Tx, user, id string) *bolt.Bucket {
	ub := tx.Bucket(bucketUsers).Bucket([]byte(user))
	if ub == nil {
		return nil
	}
	return ub.Bucket([]byte(id))
}

// createDeviceBucket returns the bucket of one device, creating it and its
// user's bucket as needed.
func createDeviceBucket(tx *bolt.Tx, user, id string) (*bolt.Bucket, error) {
	ub, err := tx.Bucket(bucketUsers).CreateBucketIfNotExists([]byte(user))
	if err != nil {
		return nil, err
	}
	return ub.CreateBucketIfNotExists([]byte(id))
}

// createSubBucket returns a child bucket of a device bucket, creating it
// and the buckets above it as needed.
func createSubBucket(tx *bolt.Tx, user, id string, name []byte) (*bolt.Bucket, error) {
	db, err := createDeviceBucket(tx, user, id)
	if err != nil {
		return nil, err
	}
	return db.CreateBucketIfNotExists(name)
}

// subBucket returns a child bucket of a device bucket, or nil.
func subBucket(tx *bolt.Tx, user, id string, name []byte) *bolt.Bucket {
	if db := deviceBucket(tx, user, id); db != nil {
		return db.Bucket(name)
	}
	return nil
}

func readDevice(b *bolt.Bucket) (*devices.Device, error) {
	v := b.Get(keyDevice)
	if v == nil {
		return nil, devices.ErrNotFound
	}
	var d devices.Device
	if err := json.Unmarshal(v, &d); err != nil {
		return nil, fmt.Errorf("boltstore: corrupt device record: %w", err)
	}
	return &d, nil
}

// GetDevice implements devices.Store.
func (s *Store) GetDevice(ctx context.Context, user, device string) (*devices.Device, error) {
	id, err := devices.CheckIDs(user, device)
	if err != nil {
		return nil, err
	}
	var d *devices.Device
	err = s.view(ctx, func(tx *bolt.Tx) error {
		db := deviceBucket(tx, user, id)
		if db == nil {
			return devices.ErrNotFound
		}
		d, err = readDevice(db)
		return err
	})
	return d, err
}

// UpsertDevice implements devices.Store.
func (s *Store) UpsertDevice(ctx context.Context, user, device string, fn func(*devices.Device) error) (*devices.Device, error) {
	return s.updateDevice(ctx, user, device, true, fn)
}

// UpdateDevice implements devices.Store.
func (s *Store) UpdateDevice(ctx context.Context, user, device string, fn func(*devices.Device) error) (*devices.Device, error) {
	return s.updateDevice(ctx, user, device, false, fn)
}

func (s *Store) updateDevice(ctx context.Context, user, device string, create bool, fn func(*devices.Device) error) (*devices.Device, error) {
	id, err := devices.CheckIDs(user, device)
	if err != nil {
		return nil, err
	}
	var out *devices.Device
	err = s.update(ctx, func(tx *bolt.Tx) error {
		var cur *devices.Device
		if db := deviceBucket(tx, user, id); db != nil {
			cur, err = readDevice(db)
			if err != nil && !errors.Is(err, devices.ErrNotFound) {
				return err
			}
		}
		if cur == nil && !create {
			return devices.ErrNotFound
		}
		d, changed, err := devices.ApplyUpdate(cur, user, id, s.now(), fn)
		if err != nil {
			return err
		}
		out = d
		if !changed {
			return nil
		}
		v, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("boltstore: encode device: %w", err)
		}
		db, err := createDeviceBucket(tx, user, id)
		if err != nil {
			return err
		}
		return db.Put(keyDevice, v)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ListDevices implements devices.Store. bbolt iterates keys in byte order,
// which is the order devices.Store promises.
func (s *Store) ListDevices(ctx context.Context, user string) ([]*devices.Device, error) {
	var out []*devices.Device
	listUser := func(ub *bolt.Bucket) error {
		return ub.ForEachBucket(func(id []byte) error {
			d, err := readDevice(ub.Bucket(id))
			if errors.Is(err, devices.ErrNotFound) {
				return nil // state without a record
			}
			if err != nil {
				return err
			}
			out = append(out, d)
			return nil
		})
	}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		if user != "" {
			if ub := users.Bucket([]byte(user)); ub != nil {
				return listUser(ub)
			}
			return nil
		}
		return users.ForEachBucket(func(u []byte) error { return listUser(users.Bucket(u)) })
	})
	return out, err
}

// DeleteDevice implements devices.Store: it drops the device's bucket, and
// the user's bucket once it is empty.
func (s *Store) DeleteDevice(ctx context.Context, user, device string) error {
	id, err := devices.CheckIDs(user, device)
	if err != nil {
		return err
	}
	hadRecord := false
	err = s.update(ctx, func(tx *bolt.Tx) error {
		users := tx.Bucket(bucketUsers)
		ub := users.Bucket([]byte(user))
		if ub == nil {
			return nil
		}
		db := ub.Bucket([]byte(id))
		if db == nil {
			return nil
		}
		hadRecord = db.Get(keyDevice) != nil
		if err := ub.DeleteBucket([]byte(id)); err != nil {
			return err
		}
		if k, _ := ub.Cursor().First(); k == nil {
			return users.DeleteBucket([]byte(user))
		}
		return nil
	})
	if err == nil && !hadRecord {
		return devices.ErrNotFound
	}
	return err
}
