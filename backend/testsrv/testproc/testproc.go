// Package testproc is what the test harnesses that run outside servers
// (backend/testsrv's Dovecot, devices/redistest's redis-server) have in
// common: finding the binary or naming the Debian package that provides
// it, picking a free loopback port, retrying a start that lost its port to
// another process, running the server in its own process group, waiting
// until it is ready, and stopping it so that it leaves nothing behind.
//
// It imports only the standard library (testing included, for CheckGone),
// so any harness may use it.
package testproc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// MissingError reports that a binary a harness needs is not installed.
type MissingError struct {
	// Binary is the program that was looked for ("dovecot").
	Binary string
	// Package is the Debian package that provides it ("dovecot-imapd").
	Package string
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s not found: install the Debian package %s (apt-get install -y %s)", e.Binary, e.Package, e.Package)
}

// FindBinary returns the path of the first of paths that exec.LookPath
// finds: a bare name is looked up in PATH, a path with a slash is taken as
// it is (PATH for non-root users often lacks /usr/sbin, so harnesses give
// the usual full path last).
func FindBinary(paths ...string) (string, error) {
	err := errors.New("no binary named")
	for _, p := range paths {
		var found string
		if found, err = exec.LookPath(p); err == nil {
			return found, nil
		}
	}
	return "", err
}

// FreePort asks the kernel for a free loopback TCP port. Another process
// may take it before the caller binds it; see RetryAddrInUse.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ErrAddrInUse marks a start that failed because another process bound
// the probed port first; RetryAddrInUse tries again on a new port.
var ErrAddrInUse = errors.New("address already in use")

// addrInUseTries is how often RetryAddrInUse starts a server.
const addrInUseTries = 5

// RetryAddrInUse calls launch until it succeeds, fails with an error other
// than ErrAddrInUse, or has been tried a few times; it returns the last
// result.
func RetryAddrInUse[T any](launch func() (T, error)) (T, error) {
	var v T
	var err error
	for range addrInUseTries {
		if v, err = launch(); err == nil || !errors.Is(err, ErrAddrInUse) {
			break
		}
	}
	return v, err
}

// StartTimeout bounds how long a harness waits for a server to come up
// (WaitReady) or go away. It is a guard against hanging forever, not a
// performance expectation.
const StartTimeout = 60 * time.Second

// StopGrace is how long a harness lets a server shut down after SIGTERM
// before it kills the process group (see Terminate).
const StopGrace = 10 * time.Second

// Process is a server started in its own process group, reaped in the
// background as soon as it exits.
type Process struct {
	// PID is the process; it leads its own process group.
	PID int

	name   string
	exited chan struct{} // closed when the process has been reaped
}

// Start starts cmd as the leader of a new process group. name says what
// it is in error messages ("dovecot").
func Start(name string, cmd *exec.Cmd) (*Process, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	p := &Process{PID: cmd.Process.Pid, name: name, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// WaitReady calls probe every few milliseconds until it is done, the
// process exits or StartTimeout passes. probe returns done and a nil
// error once the server is ready, done and an error when it never will
// be, and !done with the reason while it is not ready yet. what names
// what is waited for in errors ("IMAP greeting").
func (p *Process) WaitReady(what string, probe func() (done bool, err error)) error {
	deadline := time.Now().Add(StartTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited while waiting for its %s", p.name, what)
		default:
		}
		done, err := probe()
		if done {
			return err
		}
		lastErr = err
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited while waiting for its %s", p.name, what)
		case <-time.After(10 * time.Millisecond):
		}
	}
	return fmt.Errorf("no %s within %v: %v", what, StartTimeout, lastErr)
}

// Kill sends SIGKILL to the whole process group at once, as a crash or an
// OOM kill would, and waits until the leader has been reaped.
func (p *Process) Kill() {
	syscall.Kill(-p.PID, syscall.SIGKILL)
	<-p.exited
}

// Terminate sends SIGTERM to the leader, unless it has exited already,
// and waits up to grace for it to exit. If it does not, the process group
// is killed and the error says so.
func (p *Process) Terminate(grace time.Duration) error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	syscall.Kill(p.PID, syscall.SIGTERM)
	select {
	case <-p.exited:
		return nil
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s (pid %d) ignored SIGTERM for %v; killed", p.name, p.PID, grace)
	}
}

// ForTest runs launch for tb and stop at tb.Cleanup: the testing
// constructors of the harnesses (StartDovecot, redistest.Start, ...). A
// failed launch fails tb (a *MissingError with its message alone, which
// names the package to install), and so does a failed stop. what names the
// server in those messages ("dovecot").
func ForTest[T any](tb testing.TB, what string, launch func() (T, error), stop func(T) error) T {
	tb.Helper()
	v, err := launch()
	if err != nil {
		var missing *MissingError
		if errors.As(err, &missing) {
			tb.Fatal(err.Error())
		}
		tb.Fatalf("%s: %v", what, err)
	}
	tb.Cleanup(func() {
		if err := stop(v); err != nil {
			tb.Errorf("stopping %s: %v", what, err)
		}
	})
	return v
}

// CheckGone fails tb unless a stopped server left nothing behind: nothing
// accepts connections on addr, the process pid no longer exists and its
// directory dir is removed.
func CheckGone(tb testing.TB, addr, dir string, pid int) {
	tb.Helper()
	if c, err := net.Dial("tcp", addr); err == nil {
		c.Close()
		tb.Errorf("%s still accepts connections after stop", addr)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		tb.Errorf("pid %d after stop: kill(0) = %v, want ESRCH", pid, err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		tb.Errorf("dir %s after stop: %v, want it removed", dir, err)
	}
}
