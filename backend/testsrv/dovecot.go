package testsrv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easgate/easgate/backend/testsrv/testproc"
)

// DovecotPackage is the Debian package that provides the dovecot binary
// with IMAP support.
const DovecotPackage = "dovecot-imapd"

// ErrDovecotMissing reports that no dovecot binary was found. It is a
// *testproc.MissingError.
var ErrDovecotMissing error = &testproc.MissingError{Binary: "dovecot", Package: DovecotPackage}

// Options configure Launch.
type Options struct {
	// Users maps user names to plain-text passwords; nil means
	// DefaultUsers. They are written to the passwd-file before start;
	// Dovecot only notices later changes after a second or more, so the
	// set is fixed for the instance's life.
	Users map[string]string
	// Binary is the dovecot executable. Empty means "dovecot" from PATH,
	// then /usr/sbin/dovecot.
	Binary string
	// Config is appended to the generated dovecot.conf, e.g. the raised
	// service limits of a load test (see LoadConfig). A setting given
	// again there overrides the generated one.
	Config string
}

// Dovecot is a private Dovecot instance: its own configuration, base_dir,
// state_dir, mail and log under Dir, an IMAP listener on Addr, running in
// its own process group led by PID.
type Dovecot struct {
	// Addr is the IMAP listener, "127.0.0.1:port", plain text (no TLS).
	Addr string
	// Dir holds dovecot.conf, passwd, dovecot.log, run/, state/ and mail/.
	Dir string
	// PID is the Dovecot master process; it leads its own process group.
	PID int
	// Users are the accounts the instance accepts, name to password.
	Users map[string]string

	binary string
	proc   *testproc.Process

	stopOnce sync.Once
	stopErr  error
}

// StartDovecot launches a private Dovecot for tb with the given users
// (DefaultUsers if nil) and stops it at tb.Cleanup. A missing binary or a
// failed start fails the test.
func StartDovecot(tb testing.TB, users map[string]string) *Dovecot {
	tb.Helper()
	return testproc.ForTest(tb, "dovecot", func() (*Dovecot, error) { return Launch(Options{Users: users}) }, (*Dovecot).Stop)
}

// Launch starts a private Dovecot and waits until its IMAP listener sends
// the "* OK" greeting (imap-login holds the greeting until auth is up, so
// a greeted connection can log in). The caller must call Stop.
func Launch(opts Options) (*Dovecot, error) {
	search := []string{"dovecot", "/usr/sbin/dovecot"}
	if opts.Binary != "" {
		search = []string{opts.Binary}
	}
	bin, err := testproc.FindBinary(search...)
	if err != nil {
		return nil, ErrDovecotMissing
	}
	if opts.Users == nil {
		opts.Users = DefaultUsers()
	}
	users := make(map[string]string, len(opts.Users))
	for name, pw := range opts.Users {
		if name == "" || strings.ContainsAny(name, ":\r\n\x00") || strings.ContainsAny(pw, ":\r\n\x00") {
			return nil, fmt.Errorf("user %q: names and passwords may not be empty or contain ':' or line breaks", name)
		}
		users[name] = pw
	}
	// A free port can be taken by someone else between our probe and
	// Dovecot's bind; try a few ports before giving up.
	return testproc.RetryAddrInUse(func() (*Dovecot, error) {
		return launchOnce(bin, users, opts.Config)
	})
}

func launchOnce(bin string, users map[string]string, extra string) (*Dovecot, error) {
	dir, err := os.MkdirTemp("", "easgate-dovecot-")
	if err != nil {
		return nil, err
	}
	d := &Dovecot{Dir: dir, Users: users, binary: bin}
	if err := d.prepare(extra); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	stderr, err := os.OpenFile(filepath.Join(dir, "stderr.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cmd := exec.Command(bin, "-F", "-c", filepath.Join(dir, "dovecot.conf"))
	cmd.Dir = dir
	cmd.Stdout = stderr
	cmd.Stderr = stderr
	proc, err := testproc.Start("dovecot", cmd)
	stderr.Close() // the child holds its own copy
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	d.proc = proc
	d.PID = proc.PID

	if err := proc.WaitReady("IMAP greeting", func() (bool, error) { return greeted(d.Addr) }); err != nil {
		log := d.Log()
		d.Kill()
		os.RemoveAll(dir)
		if strings.Contains(log, "Address already in use") {
			return nil, fmt.Errorf("dovecot on %s: %w", d.Addr, testproc.ErrAddrInUse)
		}
		return nil, fmt.Errorf("dovecot on %s: %v\n%s", d.Addr, err, log)
	}
	return d, nil
}

// prepare picks the port and writes the passwd-file and configuration,
// with extra appended to the latter.
func (d *Dovecot) prepare(extra string) error {
	port, err := testproc.FreePort()
	if err != nil {
		return err
	}
	d.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))

	ids, err := processIdentity()
	if err != nil {
		return err
	}
	// As root, auth runs as the dovecot user and must read passwd, and
	// mail processes run as nobody (Dovecot refuses uid 0 for mail), so
	// the instance dir is world-readable and the mail root world-writable.
	if err := os.Chmod(d.Dir, 0o755); err != nil {
		return err
	}
	mailMode := os.FileMode(0o700)
	if ids.root {
		mailMode = 0o777
	}
	if err := os.Mkdir(filepath.Join(d.Dir, "mail"), mailMode); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(d.Dir, "mail"), mailMode); err != nil { // umask
		return err
	}

	names := make([]string, 0, len(d.Users))
	for name := range d.Users {
		names = append(names, name)
	}
	sort.Strings(names)
	var pw strings.Builder
	for _, name := range names {
		fmt.Fprintf(&pw, "%s:{PLAIN}%s::::::\n", name, d.Users[name])
	}
	if err := os.WriteFile(filepath.Join(d.Dir, "passwd"), []byte(pw.String()), 0o644); err != nil {
		return err
	}
	conf := dovecotConfig(d.Dir, port, ids)
	if extra != "" {
		conf += "# Options.Config\n" + extra + "\n"
	}
	return os.WriteFile(filepath.Join(d.Dir, "dovecot.conf"), []byte(conf), 0o644)
}

// identity is who Dovecot's processes run as.
type identity struct {
	root             bool
	user, group      string // non-root: our own names for default_*_user
	mailUID, mailGID string // userdb uid/gid
}

func processIdentity() (identity, error) {
	if os.Geteuid() == 0 {
		return identity{root: true, mailUID: "nobody", mailGID: "nogroup"}, nil
	}
	u, err := user.Current()
	if err != nil {
		return identity{}, fmt.Errorf("looking up the current user: %w", err)
	}
	g, err := user.LookupGroupId(strconv.Itoa(os.Getegid()))
	if err != nil {
		return identity{}, fmt.Errorf("looking up the current group: %w", err)
	}
	return identity{
		user: u.Username, group: g.Name,
		mailUID: strconv.Itoa(os.Geteuid()), mailGID: strconv.Itoa(os.Getegid()),
	}, nil
}

// dovecotConfig renders the Dovecot 2.3 configuration for one instance.
func dovecotConfig(dir string, port int, ids identity) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# Private easgate test instance, written by backend/testsrv.")
	p("instance_name = easgate-test-%d", port)
	p("base_dir = %s/run", dir)
	p("state_dir = %s/state", dir)
	p("log_path = %s/dovecot.log", dir)
	p("protocols = imap")
	p("listen = 127.0.0.1")
	p("ssl = no")
	p("disable_plaintext_auth = no")
	p("auth_mechanisms = plain login")
	p("mail_fsync = never")
	// No waiting after a failed login, and no anvil penalty growing with
	// each failure: tests of bad passwords must not slow the suite down.
	p("auth_failure_delay = 0")
	if !ids.root {
		// Without root Dovecot cannot chown sockets to its usual service
		// users nor chroot its login processes.
		p("default_internal_user = %s", ids.user)
		p("default_internal_group = %s", ids.group)
		p("default_login_user = %s", ids.user)
	}
	p("passdb {")
	p("  driver = passwd-file")
	p("  args = scheme=PLAIN username_format=%%u %s/passwd", dir)
	p("}")
	p("userdb {")
	p("  driver = static")
	p("  args = uid=%s gid=%s home=%s/mail/%%u", ids.mailUID, ids.mailGID, dir)
	p("}")
	p("mail_location = maildir:~/Maildir")
	p("namespace inbox {")
	p("  inbox = yes")
	p("  separator = /")
	for _, f := range []string{"Drafts", "Sent", "Trash", "Junk"} {
		p("  mailbox %s {", f)
		p("    special_use = \\%s", f)
		p("    auto = subscribe")
		p("  }")
	}
	p("}")
	// A gateway pools and IDLEs many connections per user from one IP;
	// the default of 10 would refuse them.
	p("protocol imap {")
	p("  mail_max_userip_connections = 1000")
	p("}")
	p("service anvil {")
	if !ids.root {
		p("  chroot =")
	}
	p("  unix_listener anvil-auth-penalty {")
	p("    mode = 0")
	p("  }")
	p("}")
	p("service imap-login {")
	if !ids.root {
		p("  chroot =")
	}
	p("  inet_listener imap {")
	p("    address = 127.0.0.1")
	p("    port = %d", port)
	p("  }")
	p("  inet_listener imaps {")
	p("    port = 0")
	p("  }")
	p("}")
	return b.String()
}

// greeted is the WaitReady probe of an IMAP server at addr: done when it
// greets, successfully if with "* OK".
func greeted(addr string) (bool, error) {
	line, err := readGreeting(addr)
	switch {
	case err != nil:
		return false, err
	case !strings.HasPrefix(line, "* OK"):
		return true, fmt.Errorf("unexpected greeting %q", line)
	}
	return true, nil
}

func readGreeting(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	c.Write([]byte("x LOGOUT\r\n"))
	return strings.TrimRight(line, "\r\n"), nil
}

// Log returns the instance's dovecot.log followed by anything the master
// wrote to stderr, for failure messages.
func (d *Dovecot) Log() string {
	var b strings.Builder
	for _, name := range []string{"dovecot.log", "stderr.log"} {
		data, err := os.ReadFile(filepath.Join(d.Dir, name))
		if err != nil {
			continue
		}
		if len(data) > 0 {
			fmt.Fprintf(&b, "--- %s ---\n%s", name, data)
		}
	}
	return b.String()
}

// Kill ends the whole process group with SIGKILL at once, the way a crash
// or an OOM kill would, and waits for the master to be reaped. The
// directory stays until Stop.
func (d *Dovecot) Kill() {
	d.proc.Kill()
	waitPortClosed(d.Addr)
}

// Stop shuts Dovecot down: SIGTERM to the master, SIGKILL to the process
// group if it has not exited within a grace period (and always afterwards,
// to catch stragglers), then removes Dir. It waits until the IMAP port no
// longer accepts connections. Calling Stop again returns the first result.
func (d *Dovecot) Stop() error {
	d.stopOnce.Do(func() {
		d.stopErr = d.proc.Terminate(testproc.StopGrace)
		d.proc.Kill()
		if err := waitPortClosed(d.Addr); err != nil && d.stopErr == nil {
			d.stopErr = err
		}
		if d.stopErr != nil {
			// The log goes with the directory; keep it in the error.
			d.stopErr = fmt.Errorf("%w\n%s", d.stopErr, d.Log())
		}
		if err := os.RemoveAll(d.Dir); err != nil && d.stopErr == nil {
			d.stopErr = err
		}
	})
	return d.stopErr
}

// waitPortClosed waits until nothing accepts connections on addr. Killed
// processes release their sockets as they exit, a moment after the signal.
func waitPortClosed(addr string) error {
	deadline := time.Now().Add(testproc.StartTimeout)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil
		}
		c.Close()
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("%s still accepts connections after stop", addr)
}

// Dial opens an IMAP connection to the instance and logs in as user. The
// connection is closed at tb.Cleanup.
func (d *Dovecot) Dial(tb testing.TB, user string) *imapclient.Client {
	tb.Helper()
	return dialLogin(tb, d.Addr, user, d.Users[user], d.Log)
}

// dialLogin connects to addr and logs in; a failure fails tb with the
// server log if one is available.
func dialLogin(tb testing.TB, addr, user, password string, serverLog func() string) *imapclient.Client {
	tb.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		tb.Fatalf("testsrv: dial %s: %v", addr, err)
	}
	tb.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		log := ""
		if serverLog != nil {
			log = serverLog()
		}
		tb.Fatalf("testsrv: login %s at %s: %v\n%s", user, addr, err, log)
	}
	return c
}

// ConnectionCount returns how many IMAP sessions user has open, as
// Dovecot's anvil counts them (`doveadm who` against this instance).
// Sessions still in login are not counted.
func (d *Dovecot) ConnectionCount(user string) (int, error) {
	doveadm, err := findDoveadm()
	if err != nil {
		return 0, err
	}
	out, err := exec.Command(doveadm, "-c", filepath.Join(d.Dir, "dovecot.conf"), "who", "-1", user).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("doveadm who: %v: %s", err, out)
	}
	return countWho(string(out), user), nil
}

// ConnectionCounts returns how many IMAP sessions each user has open, as
// ConnectionCount does for one user; users without any are absent.
func (d *Dovecot) ConnectionCounts() (map[string]int, error) {
	doveadm, err := findDoveadm()
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(doveadm, "-c", filepath.Join(d.Dir, "dovecot.conf"), "who", "-1").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("doveadm who: %v: %s", err, out)
	}
	return countWhoAll(string(out)), nil
}

// countWhoAll counts the IMAP lines of `doveadm who -1` output per user.
func countWhoAll(out string) map[string]int {
	n := map[string]int{}
	for i, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if i == 0 && len(f) > 0 && f[0] == "username" {
			continue
		}
		if len(f) >= 2 && f[1] == "imap" {
			n[f[0]]++
		}
	}
	return n
}

// countWho counts the per-connection lines of `doveadm who -1` output
// ("username proto pid ip" after a header line) that belong to user.
func countWho(out, user string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == user && f[1] == "imap" {
			n++
		}
	}
	return n
}

// findDoveadm returns the doveadm binary, which ConnectionCount and
// ConnectionCounts ask.
func findDoveadm() (string, error) {
	doveadm, err := testproc.FindBinary("doveadm", "/usr/bin/doveadm")
	if err != nil {
		return "", &testproc.MissingError{Binary: "doveadm", Package: "dovecot-core"}
	}
	return doveadm, nil
}
