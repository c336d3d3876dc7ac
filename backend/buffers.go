package backend

import (
	"math/bits"
	"sync"
)

// Message bytes are the bulk of what a Sync reads (a window of 512 small
// messages is about 1.5 MB) and each message is needed only until its
// item is built. So a Session may take the buffers it reads messages into
// from a pool (Bytes), and a caller done with them hands them back
// (ReleaseBytes): an initial sync of 2,000 messages then allocates a
// fifth less, and the garbage collector runs that much less often
// (docs/benchmarks.md). A buffer never handed back is ordinary garbage.

// minPooled and maxPooled bound the capacities the pool keeps, one
// class per power of two: 1, 2, 4, 8, 16 and 32 KiB.
const (
	minPooled = 1 << 10
	maxPooled = 32 << 10
)

var pools [6]sync.Pool

// poolClass returns the pool for buffers of capacity c, which must be a
// power of two within the pooled range, or -1.
func poolClass(c int) int {
	if c < minPooled || c > maxPooled || c&(c-1) != 0 {
		return -1
	}
	return bits.TrailingZeros(uint(c)) - bits.TrailingZeros(minPooled)
}

// Bytes returns a buffer of length n, all zeros, taken from the pool
// when n is at most 32 KiB. Hand it back with ReleaseBytes once nothing
// refers to it (or leave it to the garbage collector).
func Bytes(n int) []byte {
	if n <= 0 || n > maxPooled {
		return make([]byte, n)
	}
	c := max(minPooled, 1<<bits.Len(uint(n-1)))
	if b, ok := pools[poolClass(c)].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, c)
}

// ReleaseBytes hands a buffer Bytes returned back to the pool; one whose
// capacity is not a pooled size is left alone. After it neither b nor anything sharing its memory (a
// sub-slice, a string made over it without copying) may be used: the
// buffer is zeroed at once, so a reader that kept a reference sees zeros,
// not another message's bytes, and its test fails.
func ReleaseBytes(b []byte) {
	i := poolClass(cap(b))
	if i < 0 {
		return
	}
	b = b[:cap(b)]
	clear(b)
	pools[i].Put(&b)
}
