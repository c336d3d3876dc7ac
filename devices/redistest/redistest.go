// Package redistest starts private redis-server processes for tests and
// load tools: a standalone server and an n-master Redis Cluster, each on
// free 127.0.0.1 ports with its own directory and no persistence, so tests
// never touch a system Redis on 6379 or each other.
//
// The testing constructors (Start, StartCluster) register their own
// cleanup; Launch and LaunchCluster leave the lifetime to the caller. A
// missing redis-server is a test failure naming the Debian package, never
// a skip.
package redistest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/easgate/easgate/backend/testsrv/testproc"
)

// Package is the Debian package that provides redis-server.
const Package = "redis-server"

// ErrMissing reports that no redis-server binary was found. It is a
// *testproc.MissingError.
var ErrMissing error = &testproc.MissingError{Binary: "redis-server", Package: Package}

// Server is one private redis-server process.
type Server struct {
	// Addr is "127.0.0.1:port".
	Addr string
	// PID is the redis-server process; it leads its own process group.
	PID int
	// Dir is the server's working directory (holds redis.log).
	Dir string

	proc *testproc.Process

	stopOnce sync.Once
	stopErr  error
}

// Start launches a standalone redis-server for tb and stops it at
// tb.Cleanup.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return testproc.ForTest(tb, "redis-server", Launch, (*Server).Stop)
}

// Launch starts a standalone redis-server without persistence and waits
// until it answers PING. The caller must call Stop.
func Launch() (*Server, error) {
	return launchRetrying(nil)
}

// launchRetrying starts a server with extra arguments, retrying on a new
// port if another process took the probed one first.
func launchRetrying(extra func(dir string, port int) ([]string, error)) (*Server, error) {
	bin, err := testproc.FindBinary("redis-server", "/usr/bin/redis-server")
	if err != nil {
		return nil, ErrMissing
	}
	return testproc.RetryAddrInUse(func() (*Server, error) {
		return launchOnce(bin, extra)
	})
}

func launchOnce(bin string, extra func(dir string, port int) ([]string, error)) (*Server, error) {
	dir, err := os.MkdirTemp("", "easgate-redis-")
	if err != nil {
		return nil, err
	}
	port, err := testproc.FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	args := []string{
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "", // no RDB snapshots; "" must be its own argument
		"--appendonly", "no",
		"--dir", dir,
		"--daemonize", "no",
		"--protected-mode", "yes",
		"--loglevel", "warning",
		"--logfile", filepath.Join(dir, "redis.log"),
	}
	if extra != nil {
		more, err := extra(dir, port)
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		args = append(args, more...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	proc, err := testproc.Start("redis-server", cmd)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s := &Server{
		Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		PID:  proc.PID,
		Dir:  dir,
		proc: proc,
	}
	if err := s.waitReady(); err != nil {
		log := s.Log()
		s.Kill()
		os.RemoveAll(dir)
		if strings.Contains(log, "Address already in use") {
			return nil, fmt.Errorf("redis-server on %s: %w", s.Addr, testproc.ErrAddrInUse)
		}
		return nil, fmt.Errorf("redis-server on %s: %v\n%s", s.Addr, err, log)
	}
	return s, nil
}

// waitReady waits until the server answers PING.
func (s *Server) waitReady() error {
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, Protocol: 3, MaxRetries: -1, DialTimeout: time.Second})
	defer rdb.Close()
	return s.proc.WaitReady("PING answer", func() (bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := rdb.Ping(ctx).Err()
		return err == nil, err
	})
}

// Client returns a RESP3 client for the server, closed at tb.Cleanup.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr, Protocol: 3})
	tb.Cleanup(func() { rdb.Close() })
	return rdb
}

// Log returns the server's log file, for failure messages.
func (s *Server) Log() string {
	data, _ := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	return string(data)
}

// Kill ends the server with SIGKILL, as a crash would, and waits for it
// to be reaped. The directory stays until Stop.
func (s *Server) Kill() {
	s.proc.Kill()
}

// Stop sends SIGTERM, falls back to SIGKILL after a grace period, waits
// for the process to be reaped and removes Dir. Calling Stop again returns
// the first result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.stopErr = s.proc.Terminate(testproc.StopGrace)
		if err := os.RemoveAll(s.Dir); err != nil && s.stopErr == nil {
			s.stopErr = err
		}
	})
	return s.stopErr
}
