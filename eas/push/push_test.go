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
	if closed(w1.Superseded()) || closed(other.Superseded()) {
		t.Fatal("superseded before any newer wait")
	}
	w2, _ := r.Begin(ctx, a)
	if !closed(w1.Superseded()) {
		t.Fatal("older wait of the same device not superseded")
	}
	if closed(w2.Superseded()) || closed(other.Superseded()) {
		t.Fatal("newer wait or other device superseded")
	}
	w1.End() // the older one ending must not drop the newer one
	if r.Len() != 2 {
		t.Fatalf("Len = %d, want 2", r.Len())
	}
	if !r.Supersede(a) || !closed(w2.Superseded()) {
		t.Fatal("Supersede did not end the held wait")
	}
	if r.Supersede(a) {
		t.Fatal("Supersede found a wait that was already ended")
	}
	w2.End()
	other.End()
	other.End()
	if r.Len() != 0 {
		t.Fatalf("Len = %d after End, want 0", r.Len())
	}
}
