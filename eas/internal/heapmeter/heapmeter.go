// Package heapmeter measures how much heap a piece of code holds at its
// peak, for the benchmarks and tests that check the gateway's memory
// goals (a streamed download, a Sync window of large messages).
package heapmeter

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"time"
)

// heapObjects is the runtime/metrics sample of the bytes held by heap
// objects, live or not yet swept: what the heap must hold at that moment.
const heapObjects = "/memory/classes/heap/objects:bytes"

// Growth runs f and returns the highest heap-object bytes seen while it
// ran, less those held before it (after a GC), sampled every 200 µs with
// runtime/metrics (which, unlike ReadMemStats, does not stop the world),
// and the bytes f allocated in all. It sets GOGC to 10 while f runs, so
// the peak is what the code holds rather than garbage the collector has
// not reached yet (which depends on GOGC, the heap before, and the race
// detector). Not for concurrent use: GOGC is process-wide.
func Growth(f func()) (peak, allocated uint64) {
	defer debug.SetGCPercent(debug.SetGCPercent(10))
	samples := []metrics.Sample{{Name: heapObjects}, {Name: "/gc/heap/allocs:bytes"}}
	runtime.GC()
	metrics.Read(samples)
	base, alloc0 := samples[0].Value.Uint64(), samples[1].Value.Uint64()
	top := base
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		s := []metrics.Sample{{Name: heapObjects}}
		tick := time.NewTicker(200 * time.Microsecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			top = max(top, s[0].Value.Uint64())
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	})
	f()
	close(stop)
	wg.Wait()
	metrics.Read(samples)
	top = max(top, samples[0].Value.Uint64())
	return top - base, samples[1].Value.Uint64() - alloc0
}
