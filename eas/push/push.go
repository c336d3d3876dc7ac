// Package push holds what the gateway's long-held requests (Ping and
// hanging Sync) wait on.
//
// A device has at most one such request waiting (MS-ASCMD 2.2.1.13; the
// digest §3.7: "a new Ping from the same device should end the previous
// one"). When a newer one arrives the older one must answer at once, or
// the device would hold two connections for nothing. An administrator's
// wipe or block must end it too, so that the phone comes back and learns
// its fate. Broker is that seam: Registry does it within one process (the
// embedded store: one instance), RedisBroker across gateway instances
// sharing a Redis.
//
// Hub is the other half: one mail watcher per user (IMAP IDLE plus a poll
// of the change marks), shared by all of that user's waiting requests.
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

// Reason says why a wait was ended from outside.
type Reason int

// Reasons a wait ends early.
const (
	// Superseded: a newer request of the same device began (answer "no
	// changes": true of this one).
	Superseded Reason = iota + 1
	// DeviceChanged: an administrator changed the device's access or
	// asked for a wipe; the request checks the gate again.
	DeviceChanged
	// Wake: an administrator asked the device to sync now.
	Wake
	// Shutdown: the gateway is stopping; answer "no changes" so the
	// phone comes back to another instance.
	Shutdown
)

func (r Reason) String() string {
	switch r {
	case Superseded:
		return "superseded"
	case DeviceChanged:
		return "device changed"
	case Wake:
		return "wake"
	case Shutdown:
		return "shutdown"
	}
	return "none"
}

// Broker starts waits and reaches them wherever they are held.
type Broker interface {
	// Begin starts a wait for k. The device's earlier wait, on this
	// instance or another, ends with Superseded. The caller must End
	// the wait.
	Begin(ctx context.Context, k Key) (Wait, error)
	// Signal ends the wait of k, wherever it is held, with reason
	// (DeviceChanged or Wake). Without a wait it does nothing.
	Signal(ctx context.Context, k Key, reason Reason) error
	// Shutdown ends every wait held by this process with Shutdown, and
	// every wait begun afterwards at once.
	Shutdown()
}

// Wait is one waiting request.
type Wait interface {
	// Done is closed when the wait was ended from outside.
	Done() <-chan struct{}
	// Reason says why, once Done is closed.
	Reason() Reason
	// AfterDone arranges for f to run, in a goroutine of its own, when
	// Done closes (at once if it has). stop cancels that and reports
	// whether it did, as context.AfterFunc's does.
	AfterDone(f func()) (stop func() bool)
	// End releases the wait; calling it again does nothing.
	End()
}

// Registry is the in-process Broker: the waits held by this process, at
// most one per Key. Each wait has a sequence number, and a wait only ends
// a wait with a lower number: RedisBroker hands out numbers that order
// Begins across instances, so a late message never ends a newer wait.
// The zero value is ready to use; it is safe for concurrent use.
type Registry struct {
	mu       sync.Mutex
	waits    map[Key]*wait
	seq      uint64 // the last local sequence number
	shutdown bool
}

// wait is a Registry's Wait.
type wait struct {
	r      *Registry
	k      Key
	seq    uint64
	done   chan struct{}
	reason Reason              // set once, before done closes; guarded by r.mu
	after  map[*afterDone]bool // AfterDone functions not yet run; guarded by r.mu
}

// afterDone is one AfterDone registration.
type afterDone struct{ f func() }

func (w *wait) Done() <-chan struct{} { return w.done }

func (w *wait) AfterDone(f func()) (stop func() bool) {
	a := &afterDone{f: f}
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	if w.reason != 0 {
		go f()
		return func() bool { return false }
	}
	if w.after == nil {
		w.after = make(map[*afterDone]bool)
	}
	w.after[a] = true
	return func() bool {
		w.r.mu.Lock()
		defer w.r.mu.Unlock()
		if !w.after[a] {
			return false
		}
		delete(w.after, a)
		return true
	}
}

func (w *wait) Reason() Reason {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	return w.reason
}

func (w *wait) End() {
	w.r.mu.Lock()
	defer w.r.mu.Unlock()
	if w.r.waits[w.k] == w {
		delete(w.r.waits, w.k)
	}
}

// end closes done with reason, once. r.mu is held.
func (w *wait) end(reason Reason) {
	if w.reason != 0 {
		return
	}
	w.reason = reason
	close(w.done)
	for a := range w.after {
		go a.f()
	}
	w.after = nil
}

// Begin implements Broker with a local sequence number. It never fails.
func (r *Registry) Begin(_ context.Context, k Key) (Wait, error) {
	r.mu.Lock()
	r.seq++
	seq := r.seq
	r.mu.Unlock()
	return r.BeginSeq(k, seq), nil
}

// BeginSeq starts a wait for k numbered seq: it ends the wait held here
// for k if that one's number is lower, and is itself ended at once if
// the one held here is newer (or the Registry is shut down).
func (r *Registry) BeginSeq(k Key, seq uint64) Wait {
	w := &wait{r: r, k: k, seq: seq, done: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.shutdown {
		w.end(Shutdown)
		return w
	}
	if r.waits == nil {
		r.waits = make(map[Key]*wait)
	}
	if old := r.waits[k]; old != nil {
		if old.seq > seq {
			w.end(Superseded)
			return w
		}
		old.end(Superseded)
	}
	r.waits[k] = w
	return w
}

// Supersede ends the wait held here for k if its number is below seq,
// and reports whether it did. RedisBroker calls it when a Begin on any
// instance is announced.
func (r *Registry) Supersede(k Key, seq uint64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.waits[k]
	if w == nil || w.seq >= seq {
		return false
	}
	w.end(Superseded)
	delete(r.waits, k)
	return true
}

// Signal implements Broker for the waits of this process. It never
// fails.
func (r *Registry) Signal(_ context.Context, k Key, reason Reason) error {
	r.signal(k, reason)
	return nil
}

// signal ends the wait held here for k with reason and reports whether
// there was one.
func (r *Registry) signal(k Key, reason Reason) bool {
	return r.signalUpTo(k, ^uint64(0), reason)
}

// signalUpTo ends the wait held here for k with reason if its number is
// at most seq, and reports whether it did.
func (r *Registry) signalUpTo(k Key, seq uint64, reason Reason) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.waits[k]
	if w == nil || w.seq > seq {
		return false
	}
	w.end(reason)
	delete(r.waits, k)
	return true
}

// Shutdown implements Broker.
func (r *Registry) Shutdown() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.shutdown = true
	for k, w := range r.waits {
		w.end(Shutdown)
		delete(r.waits, k)
	}
}

// heldWait names one wait held here.
type heldWait struct {
	k   Key
	seq uint64
}

// held lists the waits held here.
func (r *Registry) held() []heldWait {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]heldWait, 0, len(r.waits))
	for k, w := range r.waits {
		out = append(out, heldWait{k, w.seq})
	}
	return out
}

// Len returns how many waits are held.
func (r *Registry) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waits)
}
