package testproc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestMissingError(t *testing.T) {
	err := error(&MissingError{Binary: "dovecot", Package: "dovecot-imapd"})
	want := "dovecot not found: install the Debian package dovecot-imapd (apt-get install -y dovecot-imapd)"
	if err.Error() != want {
		t.Errorf("Error() = %q, want %q", err, want)
	}
	var me *MissingError
	if !errors.As(fmt.Errorf("launch: %w", err), &me) || me.Package != "dovecot-imapd" {
		t.Errorf("errors.As through a wrap = %v, %+v", me != nil, me)
	}
}

func TestFindBinary(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatalf("sh: %v", err)
	}
	for _, tc := range []struct {
		paths []string
		want  string // "" means an error
	}{
		{[]string{"sh"}, sh},
		{[]string{"/nonexistent/easgate-none", "sh"}, sh},
		{[]string{"easgate-no-such-binary", sh}, sh},
		{[]string{"easgate-no-such-binary", "/nonexistent/easgate-none"}, ""},
		{nil, ""},
	} {
		got, err := FindBinary(tc.paths...)
		if tc.want == "" {
			if err == nil {
				t.Errorf("FindBinary(%q) = %q, want an error", tc.paths, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("FindBinary(%q) = %q, %v; want %q", tc.paths, got, err, tc.want)
		}
	}
}

func TestFreePort(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("binding the free port %d: %v", port, err)
	}
	ln.Close()
}

func TestRetryAddrInUse(t *testing.T) {
	other := errors.New("broken config")
	for _, tc := range []struct {
		name      string
		errs      []error // what each call returns; nil is success
		wantCalls int
		wantErr   error
	}{
		{"first try", []error{nil}, 1, nil},
		{"second try", []error{ErrAddrInUse, nil}, 2, nil},
		{"other error stops", []error{ErrAddrInUse, other}, 2, other},
		{"gives up", []error{ErrAddrInUse, ErrAddrInUse, ErrAddrInUse, ErrAddrInUse, ErrAddrInUse, nil}, addrInUseTries, ErrAddrInUse},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			v, err := RetryAddrInUse(func() (int, error) {
				err := tc.errs[calls]
				calls++
				if err != nil {
					return 0, fmt.Errorf("try %d: %w", calls, err)
				}
				return calls, nil
			})
			if calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && v != calls {
				t.Errorf("value = %d, want the last call's %d", v, calls)
			}
		})
	}
}

func TestStartMissing(t *testing.T) {
	_, err := Start("none", exec.Command("/nonexistent/easgate-none"))
	if err == nil || !strings.Contains(err.Error(), "starting /nonexistent/easgate-none") {
		t.Errorf("Start of a missing binary: %v", err)
	}
}

// start runs a shell script as a Process, killed at the end of the test,
// and returns the first line the script prints once it is ready.
func start(t *testing.T, script string) (*Process, string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p, err := Start("sh", cmd)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Kill)
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the script's first line: %v", err)
	}
	return p, strings.TrimSpace(line)
}

// waitDead waits until the process pid is gone or a zombie: killed
// processes end a moment after the signal. The bound guards against
// hanging, it is no speed expectation.
func waitDead(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if errors.Is(err, os.ErrNotExist) {
			return
		}
		// The state follows the command name in brackets.
		if i := bytes.LastIndexByte(stat, ')'); err == nil && i >= 0 && i+2 < len(stat) && (stat[i+2] == 'Z' || stat[i+2] == 'X') {
			return
		}
	}
	t.Errorf("process %d still runs after its group was killed", pid)
}

func TestTerminate(t *testing.T) {
	p, _ := start(t, "echo ready; exec sleep 600")
	if err := p.Terminate(time.Minute); err != nil {
		t.Errorf("Terminate: %v", err)
	}
	select {
	case <-p.exited:
	default:
		t.Fatal("not reaped after Terminate")
	}
	if err := p.Terminate(time.Minute); err != nil {
		t.Errorf("Terminate after exit: %v", err)
	}
}

func TestTerminateIgnored(t *testing.T) {
	// The shell ignores SIGTERM, and so does its child (SIG_IGN is
	// inherited); only the group kill after the grace period ends them.
	p, child := start(t, "trap '' TERM; sleep 600 & echo $!; wait")
	err := p.Terminate(100 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "sh (pid "+strconv.Itoa(p.PID)+") ignored SIGTERM") {
		t.Errorf("Terminate of a process ignoring SIGTERM: %v", err)
	}
	pid, err := strconv.Atoi(child)
	if err != nil {
		t.Fatalf("child pid %q: %v", child, err)
	}
	waitDead(t, pid)
}

func TestKillGroup(t *testing.T) {
	p, child := start(t, "sleep 600 & echo $!; wait")
	p.Kill()
	pid, err := strconv.Atoi(child)
	if err != nil {
		t.Fatalf("child pid %q: %v", child, err)
	}
	waitDead(t, pid)
}

func TestWaitReady(t *testing.T) {
	p, _ := start(t, "echo ready; exec sleep 600")
	calls := 0
	if err := p.WaitReady("answer", func() (bool, error) {
		calls++
		if calls < 3 {
			return false, errors.New("not yet")
		}
		return true, nil
	}); err != nil || calls != 3 {
		t.Errorf("ready on the third probe: %v after %d probes", err, calls)
	}
	refused := errors.New("refused")
	calls = 0
	if err := p.WaitReady("answer", func() (bool, error) {
		calls++
		return true, refused
	}); err != refused || calls != 1 {
		t.Errorf("failing probe: %v after %d probes, want %v after 1", err, calls, refused)
	}
	p.Kill()
	err := p.WaitReady("answer", func() (bool, error) { return false, errors.New("not yet") })
	if err == nil || err.Error() != "sh exited while waiting for its answer" {
		t.Errorf("WaitReady on an exited process: %v", err)
	}
}

// recorder is the testing.TB ForTest sees: it records what would fail the
// test and ends a Fatal with a panic of itself.
type recorder struct {
	testing.TB // nil: ForTest calls only the methods below
	msgs       []string
	cleanups   []func()
}

func (r *recorder) Helper() {}
func (r *recorder) Fatal(args ...any) {
	r.msgs = append(r.msgs, "fatal: "+fmt.Sprint(args...))
	panic(r)
}
func (r *recorder) Fatalf(format string, args ...any) { r.Fatal(fmt.Sprintf(format, args...)) }
func (r *recorder) Errorf(format string, args ...any) {
	r.msgs = append(r.msgs, "error: "+fmt.Sprintf(format, args...))
}
func (r *recorder) Cleanup(f func()) { r.cleanups = append(r.cleanups, f) }

// forTest runs ForTest on a recorder and then its cleanups.
func (r *recorder) forTest(launchErr, stopErr error) (got int, stops int) {
	defer func() {
		if p := recover(); p != nil && p != r {
			panic(p)
		}
	}()
	got = ForTest(r, "thing", func() (int, error) { return 42, launchErr }, func(v int) error {
		stops++
		return stopErr
	})
	for _, f := range r.cleanups {
		f()
	}
	return got, stops
}

func TestForTest(t *testing.T) {
	missing := &MissingError{Binary: "thing", Package: "thing-pkg"}
	for _, tc := range []struct {
		name               string
		launchErr, stopErr error
		want               []string
		wantStops          int
	}{
		{"fine", nil, nil, nil, 1},
		{"missing", fmt.Errorf("launch: %w", missing), nil, []string{"fatal: launch: " + missing.Error()}, 0},
		{"broken", errors.New("boom"), nil, []string{"fatal: thing: boom"}, 0},
		{"stop fails", nil, errors.New("bang"), []string{"error: stopping thing: bang"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{}
			got, stops := r.forTest(tc.launchErr, tc.stopErr)
			if strings.Join(r.msgs, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("messages %q, want %q", r.msgs, tc.want)
			}
			if stops != tc.wantStops {
				t.Errorf("%d stops, want %d", stops, tc.wantStops)
			}
			if tc.launchErr == nil && got != 42 {
				t.Errorf("ForTest returned %d, want 42", got)
			}
		})
	}
}
