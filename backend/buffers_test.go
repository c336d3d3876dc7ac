package backend_test

import (
	"testing"

	"github.com/easgate/easgate/backend"
)

// TestBytes: buffers have the asked length and are zeroed whether new or
// handed back; sizes outside the pool are plain allocations that
// ReleaseBytes leaves alone.
func TestBytes(t *testing.T) {
	for _, n := range []int{0, 1, 1023, 1024, 1025, 2500, 32 << 10, 32<<10 + 1, 1 << 20} {
		for round := range 3 {
			b := backend.Bytes(n)
			if len(b) != n {
				t.Fatalf("Bytes(%d) has length %d", n, len(b))
			}
			for i, c := range b[:cap(b)] {
				if c != 0 {
					t.Fatalf("Bytes(%d), round %d: byte %d is %#x, want zero", n, round, i, c)
				}
			}
			for i := range b {
				b[i] = 0xa5
			}
			backend.ReleaseBytes(b)
			if n > 0 && n <= 32<<10 {
				// Handed back: zeroed at once, so a kept reference
				// shows it.
				if b[0] != 0 {
					t.Fatalf("Bytes(%d): not zeroed by ReleaseBytes", n)
				}
			} else if n > 0 && b[0] != 0xa5 {
				t.Fatalf("Bytes(%d): a buffer outside the pool was changed by ReleaseBytes", n)
			}
		}
	}
	// A buffer that did not come from Bytes is left alone.
	own := make([]byte, 100, 1000)
	own[0] = 1
	backend.ReleaseBytes(own)
	if own[0] != 1 {
		t.Fatal("ReleaseBytes changed a buffer of capacity 1000")
	}
}
