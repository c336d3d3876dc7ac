package eas

import (
	"context"
	"sync"
)

// collectionLocks serialises, within this process, the commands of one
// device that change one collection's sync state from both ends: a Sync
// of the collection (the engine's scan and state write) and a MoveItems
// from or into it (UID MOVE, then the amendment of both collections'
// states, eas/mailsync Engine.Move). Without it a Sync of the destination
// that ran between the MOVE and the amendment found the moved message as
// new and sent it as an Add, while the MoveItems answer gave the phone the
// same ServerId as DstMsgId: the message twice on the phone (the digest
// §3.6: "the destination does not send a duplicate Add"). The device
// store's revision check already keeps two writers from both moving a
// state on; this keeps the IMAP change and its record together. A command
// of the same device on another instance is not held (the phone talks to
// one instance at a time in practice).
type collectionLocks struct {
	mu sync.Mutex
	m  map[collectionKey]*collectionLock
}

// collectionKey names one collection of one device.
type collectionKey struct{ user, device, coll string }

type collectionLock struct {
	held chan struct{} // holds a token while the lock is held
	refs int           // holders and waiters
}

// lock waits until no other command of the device works on the
// collection, or until ctx ends, and returns the function that lets the
// next one go.
func (l *collectionLocks) lock(ctx context.Context, k collectionKey) (unlock func(), err error) {
	l.mu.Lock()
	if l.m == nil {
		l.m = make(map[collectionKey]*collectionLock)
	}
	c := l.m[k]
	if c == nil {
		c = &collectionLock{held: make(chan struct{}, 1)}
		l.m[k] = c
	}
	c.refs++
	l.mu.Unlock()
	select {
	case c.held <- struct{}{}:
		var once sync.Once
		return func() {
			once.Do(func() {
				<-c.held
				l.release(k, c)
			})
		}, nil
	case <-ctx.Done():
		l.release(k, c)
		return nil, ctx.Err()
	}
}

func (l *collectionLocks) release(k collectionKey, c *collectionLock) {
	l.mu.Lock()
	c.refs--
	if c.refs == 0 {
		delete(l.m, k)
	}
	l.mu.Unlock()
}
