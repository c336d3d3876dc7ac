package policy

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
)

// Holder holds the current Config and swaps it atomically on Reload, so that
// request handlers can call Config() without locks while an operator edits
// the file. A failed reload keeps the previous Config.
type Holder struct {
	path string
	cur  atomic.Pointer[Config]
}

// NewHolder loads path and returns a Holder for it. An empty path gives a
// Holder of Default() whose Reload does nothing.
func NewHolder(path string) (*Holder, error) {
	h := &Holder{path: path}
	if path == "" {
		h.cur.Store(Default())
		return h, nil
	}
	c, err := Load(path)
	if err != nil {
		return nil, err
	}
	h.cur.Store(c)
	return h, nil
}

// Config returns the current configuration.
func (h *Holder) Config() *Config { return h.cur.Load() }

// Path is the file the Holder loads from ("" for the built-in default).
func (h *Holder) Path() string { return h.path }

// Reload loads the file again. On success the new Config replaces the old
// one for every later Config call; on failure the old one stays and the
// error (a *ConfigError for a bad file) is returned.
func (h *Holder) Reload() error {
	if h.path == "" {
		return nil
	}
	c, err := Load(h.path)
	if err != nil {
		return err
	}
	h.cur.Store(c)
	return nil
}

// WatchSIGHUP reloads h whenever the process receives SIGHUP, until ctx is
// done, logging each outcome on log (nil means slog.Default()). It registers
// for the signal before it returns, so a SIGHUP sent after the call is never
// lost to the default action (which would end the process), and does its
// work in a goroutine. The gateway calls it once at start-up.
func WatchSIGHUP(ctx context.Context, h *Holder, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	go func() {
		defer signal.Stop(ch)
		for {
			select {
			case <-ctx.Done():
				return
			case <-ch:
				if err := h.Reload(); err != nil {
					log.Error("policy reload failed; keeping the previous policy", "file", h.path, "err", err)
					continue
				}
				c := h.Config()
				log.Info("policy reloaded", "file", h.path, "policies", len(c.policies), "rules", len(c.rules))
			}
		}
	}()
}
