package eas

import (
	"context"
	"sync"

	"github.com/easgate/easgate/eas/push"
)

// busyDevices tracks the devices whose commands are changing their own
// mail and sync state in this process (Sync, MoveItems). A command
// changes IMAP first and records the change in the device's sync state
// after; the user's watcher may report the IMAP change in between, and a
// waiting Ping of the same device that checked then would take the
// device's own change for news (MS-ASCMD 2.2.3.177.10 Status 2 names
// only changes the device has not synced). Waits therefore look only
// while the device is not busy here. A Sync of the device served by
// another instance at the same moment can still cause one needless
// wake-up, which costs the phone an empty Sync.
type busyDevices struct {
	mu sync.Mutex
	m  map[push.Key]*busyDevice
}

type busyDevice struct {
	n     int           // commands running
	idle  chan struct{} // closed when n drops to 0
	after []func()      // run when n drops to 0
}

// begin marks the device busy until the returned function is called.
func (b *busyDevices) begin(k push.Key) (end func()) {
	b.mu.Lock()
	if b.m == nil {
		b.m = make(map[push.Key]*busyDevice)
	}
	d := b.m[k]
	if d == nil {
		d = &busyDevice{idle: make(chan struct{})}
		b.m[k] = d
	}
	d.n++
	b.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { b.end(k, d) }) }
}

func (b *busyDevices) end(k push.Key, d *busyDevice) {
	b.mu.Lock()
	d.n--
	if d.n > 0 {
		b.mu.Unlock()
		return
	}
	delete(b.m, k)
	after := d.after
	b.mu.Unlock()
	close(d.idle)
	for _, f := range after {
		go f()
	}
}

// wait returns once the device is not busy, or with ctx's error.
func (b *busyDevices) wait(ctx context.Context, k push.Key) error {
	b.mu.Lock()
	d := b.m[k]
	b.mu.Unlock()
	if d == nil {
		return nil
	}
	select {
	case <-d.idle:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// later arranges for f to run when the device is no longer busy and
// reports true, or reports false when it is not busy now.
func (b *busyDevices) later(k push.Key, f func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	d := b.m[k]
	if d == nil {
		return false
	}
	d.after = append(d.after, f)
	return true
}
