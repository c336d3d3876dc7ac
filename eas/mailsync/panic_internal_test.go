package mailsync

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// TestBuildJobPanic: a panic while an item is built (here: a job without
// the summary every build needs) comes back as the item's error, with the
// stack in the log, rather than ending the process from the worker
// goroutine.
func TestBuildJobPanic(t *testing.T) {
	var log bytes.Buffer
	e := &Engine{Logger: slog.New(slog.NewTextHandler(&log, nil))}
	req := &Request{User: "alice", Device: "dev1", Collection: "1"}
	it, err := e.buildJob(t.Context(), req, &job{uid: 7})
	if it != nil || !errors.Is(err, errBuildPanic) {
		t.Fatalf("buildJob = %v, %v; want errBuildPanic", it, err)
	}
	if s := log.String(); !strings.Contains(s, "building an item panicked") || !strings.Contains(s, "uid=7") || !strings.Contains(s, "buildJob") {
		t.Errorf("log %q: want the panic with the uid and the stack", s)
	}
}
