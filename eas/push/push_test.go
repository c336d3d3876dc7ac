package push

import (
	"context"
	"testing"
)

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestRegistry(t *testing.T) {
	var r Registry
	ctx := context.Background()
	a := Key{"jane", "dev1"}
	w1, _ := r.Begin(ctx, a)
	other, _ := r.Begin(ctx, Key{"jane", "dev2"})
	if closed(w1.Done()) || closed(other.Done()) {
		t.Fatal("ended before any newer wait")
	}
	w2, _ := r.Begin(ctx, a)
	if !closed(w1.Done()) || w1.Reason() != Superseded {
		t.Fatalf("older wait of the same device not superseded (reason %v)", w1.Reason())
	}
	if closed(w2.Done()) || closed(other.Done()) {
		t.Fatal("newer wait or other device ended")
	}
	w1.End() // the older one ending must not drop the newer one
	if r.Len() != 2 {
		t.Fatalf("Len = %d, want 2", r.Len())
	}
	if err := r.Signal(ctx, a, Wake); err != nil || !closed(w2.Done()) || w2.Reason() != Wake {
		t.Fatalf("Signal did not end the held wait: %v, reason %v", err, w2.Reason())
	}
	if r.signal(a, DeviceChanged) || w2.Reason() != Wake {
		t.Fatal("Signal found a wait that was already ended")
	}
	w2.End()
	other.End()
	other.End()
	if r.Len() != 0 {
		t.Fatalf("Len = %d after End, want 0", r.Len())
	}
}

// TestRegistrySequence: only a higher number ends a wait, however the
// announcements and Begins interleave (RedisBroker's cross-instance
// order).
func TestRegistrySequence(t *testing.T) {
	var r Registry
	k := Key{"jane", "dev1"}
	w5 := r.BeginSeq(k, 5)
	if r.Supersede(k, 4) || r.Supersede(k, 5) || closed(w5.Done()) {
		t.Fatal("an older or the same number ended the wait")
	}
	w3 := r.BeginSeq(k, 3) // a late Begin: ends itself, not the newer one
	if !closed(w3.Done()) || w3.Reason() != Superseded || closed(w5.Done()) {
		t.Fatal("a late Begin did not yield to the newer wait")
	}
	if !r.Supersede(k, 6) || !closed(w5.Done()) || w5.Reason() != Superseded {
		t.Fatal("a newer number did not end the wait")
	}
	w6 := r.BeginSeq(k, 6)
	if r.signalUpTo(k, 5, Wake) || closed(w6.Done()) {
		t.Fatal("a signal numbered before the wait ended it")
	}
	if !r.signalUpTo(k, 6, Wake) || w6.Reason() != Wake {
		t.Fatal("a signal numbered at the wait did not end it")
	}
	w7 := r.BeginSeq(k, 7)
	r.Shutdown()
	if !closed(w7.Done()) || w7.Reason() != Shutdown {
		t.Fatal("Shutdown did not end the wait")
	}
	if w := r.BeginSeq(k, 8); !closed(w.Done()) || w.Reason() != Shutdown {
		t.Fatal("a wait begun after Shutdown did not end at once")
	}
	if r.Len() != 0 {
		t.Fatalf("Len = %d after Shutdown", r.Len())
	}
}

// TestAfterDone: a function given to AfterDone runs once when the wait
// ends, at once when it had ended, and never once stopped.
func TestAfterDone(t *testing.T) {
	var r Registry
	ctx := context.Background()
	k := Key{"jane", "dev1"}
	ran := make(chan string, 4)
	w1, _ := r.Begin(ctx, k)
	w1.AfterDone(func() { ran <- "first" })
	stop := w1.AfterDone(func() { ran <- "stopped" })
	if !stop() || stop() {
		t.Fatal("stop before the end: want true once, then false")
	}
	r.Begin(ctx, k) // supersedes w1
	if got := <-ran; got != "first" {
		t.Fatalf("ran %q", got)
	}
	late := w1.AfterDone(func() { ran <- "late" })
	if got := <-ran; got != "late" {
		t.Fatalf("ran %q", got)
	}
	if late() {
		t.Fatal("stop after the function ran reported true")
	}
	select {
	case got := <-ran:
		t.Fatalf("%q ran too", got)
	default:
	}
}
