package policy

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func writeFile(t *testing.T, path, doc string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHolderReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.toml")
	writeFile(t, path, "[policies.default]\nMinDevicePasswordLength = 4\n")
	h, err := NewHolder(path)
	if err != nil {
		t.Fatal(err)
	}
	first := h.Config()
	if *first.DefaultPolicy().Settings.MinDevicePasswordLength != 4 {
		t.Fatal("first load")
	}

	writeFile(t, path, "[policies.default]\nMinDevicePasswordLength = 6\n")
	if err := h.Reload(); err != nil {
		t.Fatal(err)
	}
	second := h.Config()
	if *second.DefaultPolicy().Settings.MinDevicePasswordLength != 6 {
		t.Fatal("reload did not take effect")
	}
	if *first.DefaultPolicy().Settings.MinDevicePasswordLength != 4 {
		t.Fatal("reload changed a Config already handed out")
	}

	// A bad file: the error is returned and the old config stays.
	writeFile(t, path, "[policies.default]\nMinDevicePasswordLength = 60\n")
	err = h.Reload()
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Line != 2 {
		t.Fatalf("Reload error = %v, want a *ConfigError at line 2", err)
	}
	if h.Config() != second {
		t.Fatal("failed reload replaced the config")
	}
	os.Remove(path)
	if err := h.Reload(); err == nil || h.Config() != second {
		t.Fatal("reload of a missing file must fail and keep the config")
	}

	if _, err := NewHolder(path); err == nil {
		t.Fatal("NewHolder of a missing file succeeded")
	}
	d, err := NewHolder("")
	if err != nil || d.Config() == nil || d.Reload() != nil || d.Path() != "" {
		t.Fatal("NewHolder(\"\") must hold Default and reload as a no-op")
	}
}

// syncBuffer is a bytes.Buffer safe for the watcher goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond; the deadline only bounds a broken test, it asserts no
// speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("gave up waiting for %s", what)
}

func TestWatchSIGHUP(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.toml")
	writeFile(t, path, "[policies.default]\nMinDevicePasswordLength = 4\n")
	h, err := NewHolder(path)
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	WatchSIGHUP(ctx, h, slog.New(slog.NewTextHandler(&logs, nil)))

	writeFile(t, path, "[policies.default]\nMinDevicePasswordLength = 8\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload", func() bool { return *h.Config().DefaultPolicy().Settings.MinDevicePasswordLength == 8 })
	waitFor(t, "the reload log line", func() bool { return strings.Contains(logs.String(), "policy reloaded") })

	before := h.Config()
	writeFile(t, path, "nonsense = \n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the failure log line", func() bool { return strings.Contains(logs.String(), "policy reload failed") })
	if h.Config() != before {
		t.Fatal("a bad file replaced the config")
	}
	if !strings.Contains(logs.String(), "policy.toml:1") {
		t.Errorf("failure log does not name file and line:\n%s", logs.String())
	}
}
