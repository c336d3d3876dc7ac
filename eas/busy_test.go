package eas

import (
	"context"
	"testing"
	"time"

	"github.com/easgate/easgate/eas/push"
)

// TestBusyDevices: a wait on a busy device looks again only when the
// last of its commands ends; other devices are not held up.
func TestBusyDevices(t *testing.T) {
	var b busyDevices
	k, other := push.Key{User: "jane", Device: "d1"}, push.Key{User: "jane", Device: "d2"}
	if b.later(k, func() { t.Error("ran for an idle device") }) {
		t.Fatal("later on an idle device reported busy")
	}
	end1, end2 := b.begin(k), b.begin(k)
	ran := make(chan struct{}, 1)
	if !b.later(k, func() { ran <- struct{}{} }) {
		t.Fatal("later on a busy device reported idle")
	}
	if b.later(other, func() {}) {
		t.Fatal("another device is busy too")
	}
	waited := make(chan error, 1)
	go func() { waited <- b.wait(context.Background(), k) }()
	end1()
	end1() // twice is once
	select {
	case <-ran:
		t.Fatal("ran while a command of the device still runs")
	case err := <-waited:
		t.Fatalf("wait returned (%v) while a command still runs", err)
	default:
	}
	end2()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
	case <-time.After(30 * time.Second): // a hang guard
		t.Fatal("never ran after the last command ended")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer b.begin(k)()
	cancel()
	if err := b.wait(ctx, k); err == nil {
		t.Fatal("wait on a busy device ignored its context")
	}
}
