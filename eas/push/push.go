// Package push keeps the long-held requests of each device apart: a phone
// has at most one Ping waiting (MS-ASCMD 2.2.1.13; the digest §3.7: "a new
// Ping from the same device should end the previous one"). When a new one
// arrives the older one must answer at once, or the device would hold two
// connections, and the gateway two IMAP IDLEs, for nothing.
//
// Broker is the seam: Registry is the in-process implementation, enough
// for one gateway instance. With several instances behind a load balancer
// the older Ping may be held elsewhere; a Redis broker would publish each
// Begin on a channel and have every instance call Supersede on its own
// Registry for the key it receives.
package push

import (
	"context"
	"sync"
)

// Key names one device partnership: the authenticated user and the
// DeviceId, lower-cased (devices.NormalizeID).
type Key struct {
	User, Device string
}

// Broker starts waits, ending the device's earlier wait wherever it is
// held.
type Broker interface {
	// Begin starts a wait for k. The device's earlier wait, if any, sees
	// its Superseded channel closed. The caller must End the wait.
	Begin(ctx context.Context, k Key) (Wait, error)
}

// Wait is one waiting request.
type Wait interface {
	// Superseded is closed when a newer wait for the same device began.
	Superseded() <-chan struct{}
	// End releases the wait; calling it again does nothing.
	End()
}

// Registry is the in-process Broker: the waits held by this process, at
// most one per Key. The zero value is ready to use; it is safe for
// concurrent use.
type Registry struct {
	mu    sync.Mutex
	waits map[Key]*wait
}

// wait is a Registry's Wait.
type wait struct {
	r    *Registry
	k    Key
	done chan struct{}
	once sync.Once
}

func (w *wait) Superseded() <-chan struct{} { return w.done }

func (w *wait) End() {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	if w.r.waits[w.k] == w {
		delete(w.r.waits, w.k)
	}
}

func (w *wait) supersede() { w.once.Do(func() { close(w.done) }) }

// Begin implements Broker. It never fails.
func (r *Registry) Begin(_ context.Context, k Key) (Wait, error) {
	w := &wait{r: r, k: k, done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.waits == nil {
		r.waits = make(map[Key]*wait)
	}
	if old := r.waits[k]; old != nil {
		old.supersede()
	}
	r.waits[k] = w
	return w, nil
}

// Supersede ends the wait held here for k, if any, and reports whether
// there was one. A cross-instance Broker calls it when another instance
// began a wait for k.
func (r *Registry) Supersede(k Key) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.waits[k]
	if w == nil {
		return false
	}
	w.supersede()
	delete(r.waits, k)
	return true
}

// Len returns how many waits are held.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waits)
}
