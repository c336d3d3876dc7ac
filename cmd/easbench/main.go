// Command easbench is easgate's push load tool (issue 5): it holds many
// concurrent Pings from many users against one gateway and one IMAP
// server, appends mail to random users' INBOX over IMAP at a steady rate,
// and reports what push costs and how fast it is — the gateway's resident
// memory, goroutines and IMAP connections, and the latency from an APPEND
// completing to each of that user's devices getting its Ping answered
// with Status 2. The numbers go to docs/benchmarks.md.
//
// Every device behaves like a phone: Provision, FolderSync, a first Sync
// of the INBOX (so that Ping has a sync state to compare with), then Ping
// with a long heartbeat; on Status 2 it Syncs the INBOX and Pings again.
//
// With -spawn, easbench starts what it measures itself: a private Dovecot
// with raised limits and the users bench00001…, a private redis-server,
// and the gateway as a separate process (this binary re-executed in
// gateway mode, which runs eas/gateway exactly as `easgate serve` does, or
// the binary given by -easgate), so that the memory measured is the
// gateway's alone. Without -spawn it drives a running gateway (-eas,
// -admin, -imap, -pid) whose IMAP server knows the users
// <prefix>00001… with the password <user>pw or -password.
//
// easbench must be the only source of mail for those users during a run:
// a device's share of the appends is counted from the messages its Syncs
// add.
//
// Usage:
//
//	easbench -spawn -users 2000 -pings 10000 -rate 20/s -duration 2m
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// config is what the command line sets.
type config struct {
	users     int           // users the devices spread over
	pings     int           // devices, each holding one Ping
	rate      float64       // appends per second
	duration  time.Duration // how long mail is appended
	settle    time.Duration // wait after every Ping is sent, before mail
	drain     time.Duration // longest wait for the last wakes after mail
	heartbeat time.Duration // Ping HeartbeatInterval
	ramp      float64       // Pings started per second
	setupConc int           // devices provisioned at once
	sample    time.Duration // sampling interval of the gateway
	jsonOut   string        // file for the result as JSON ("" none, "-" stdout instead of the table)

	spawn         bool
	easgateBinary string        // with -spawn: run this `easgate serve` instead of re-executing easbench
	gatewayLog    string        // with -spawn: the gateway's log file
	gatewayLevel  slog.Level    // with -spawn: the gateway's log level
	perProcess    int           // with -spawn: Dovecot imap client_limit (0: automatic)
	imapIdle      time.Duration // with -spawn: the gateway's IMAPIdleTimeout (0: its default)
	imapMaxConns  int           // with -spawn: the gateway's IMAPMaxConnsPerUser (0: its default)
	pprof         string        // with -spawn: net/http/pprof address of the gateway process
	memLimit      string        // with -spawn: GOMEMLIMIT of the gateway process ("" none)

	easURL     string // without -spawn: the gateway's EAS base URL
	adminURL   string // without -spawn: the admin listener (metrics)
	adminToken string // admin bearer token (EASBENCH_ADMIN_TOKEN)
	imapAddr   string // without -spawn: the IMAP server, host:port
	pid        int    // without -spawn: the gateway's process id (RSS, IMAP connections)
	prefix     string // user name prefix
	password   string // every user's password ("" = <user>pw)
}

// errUsage reports bad arguments; the message has been printed.
var errUsage = errors.New("usage")

// parseArgs reads the command line; getenv supplies EASBENCH_ADMIN_TOKEN.
func parseArgs(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("easbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var rate, ramp string
	fs.IntVar(&c.users, "users", 100, "number of `users` (IMAP accounts) the devices are spread over")
	fs.IntVar(&c.pings, "pings", 500, "number of devices, each holding one Ping")
	fs.StringVar(&rate, "rate", "10/s", "APPEND `rate`: N/s, N/m or N (per second)")
	fs.DurationVar(&c.duration, "duration", time.Minute, "how long mail is appended")
	fs.DurationVar(&c.settle, "settle", 10*time.Second, "wait after the last Ping is sent, before the first APPEND")
	fs.DurationVar(&c.drain, "drain", 30*time.Second, "longest wait for the last wake-ups after the last APPEND")
	fs.DurationVar(&c.heartbeat, "heartbeat", 15*time.Minute, "Ping HeartbeatInterval (whole seconds, 60s–59m by default on the gateway)")
	fs.StringVar(&ramp, "ramp", "200/s", "`rate` at which the Pings are started")
	fs.IntVar(&c.setupConc, "setup-concurrency", 16, "devices provisioned and synced at once")
	fs.DurationVar(&c.sample, "sample", 2*time.Second, "how often the gateway is sampled")
	fs.StringVar(&c.jsonOut, "json", "", "also write the result with every sample as JSON to `file` (\"-\": print it instead of the table)")
	fs.BoolVar(&c.spawn, "spawn", false, "start a private Dovecot, redis-server and gateway")
	fs.StringVar(&c.easgateBinary, "easgate", "", "with -spawn: the easgate `binary` to run as `easgate serve` (default: this program in gateway mode)")
	fs.StringVar(&c.gatewayLog, "gateway-log", "", "with -spawn: `file` for the gateway's log (default: a temporary file, named in the result)")
	fs.TextVar(&c.gatewayLevel, "gateway-log-level", slog.LevelWarn, "with -spawn: the gateway's log `level` (debug, info, warn, error)")
	fs.IntVar(&c.perProcess, "dovecot-clients", 0, "with -spawn: IMAP connections per Dovecot imap process (0: enough to stay under 64 processes)")
	fs.DurationVar(&c.imapIdle, "imap-idle-timeout", 0, "with -spawn: the gateway's -imap-idle-timeout: close pooled IMAP connections unused this long (0: the gateway's default, 5m)")
	fs.IntVar(&c.imapMaxConns, "imap-max-conns", 0, "with -spawn: the gateway's -imap-max-conns: pooled IMAP connections per user (0: the gateway's default, 2)")
	fs.StringVar(&c.pprof, "gateway-pprof", "", "with -spawn: serve net/http/pprof of the gateway process on this `address`, e.g. 127.0.0.1:6060")
	fs.StringVar(&c.memLimit, "gateway-gomemlimit", "", "with -spawn: GOMEMLIMIT of the gateway process, e.g. 350MiB (default: none, as `easgate serve` runs)")
	fs.StringVar(&c.easURL, "eas", "", "without -spawn: the gateway's EAS `URL`, e.g. http://127.0.0.1:8080")
	fs.StringVar(&c.adminURL, "admin", "", "without -spawn: the gateway's admin `URL` (for go_goroutines), e.g. http://127.0.0.1:8081")
	fs.StringVar(&c.imapAddr, "imap", "", "without -spawn: the IMAP server `host:port` the gateway uses")
	fs.IntVar(&c.pid, "pid", 0, "without -spawn: the gateway's process `id` (RSS and IMAP connections from /proc)")
	fs.StringVar(&c.prefix, "user-prefix", "bench", "user names are `prefix`00001, prefix00002, …")
	fs.StringVar(&c.password, "password", "", "every user's password (default <user>pw)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: easbench -spawn [flags]\n       easbench -eas URL -imap host:port [-admin URL -pid N] [flags]\n\n"+
			"Holds -pings concurrent Pings from -users users against one easgate and one\n"+
			"IMAP server, appends mail at -rate for -duration, and reports the gateway's\n"+
			"RSS, goroutines and IMAP connections and the APPEND-to-Ping latency.\n"+
			"The admin token comes from EASBENCH_ADMIN_TOKEN.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, errUsage
	}
	fail := func(format string, a ...any) (config, error) {
		fmt.Fprintf(stderr, "easbench: "+format+"\n", a...)
		return c, errUsage
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.rate, err = parseRate(rate); err != nil {
		return fail("-rate: %v", err)
	}
	if c.ramp, err = parseRate(ramp); err != nil || c.ramp == 0 {
		return fail("-ramp: %v", errOr(err, "must be more than 0"))
	}
	switch {
	case c.users < 1:
		return fail("-users must be at least 1")
	case c.pings < c.users:
		return fail("-pings (%d) must be at least -users (%d): every user has a device", c.pings, c.users)
	case c.users > 99999:
		return fail("-users must be at most 99999")
	case c.heartbeat < time.Second || c.heartbeat%time.Second != 0:
		return fail("-heartbeat must be whole seconds")
	case c.duration <= 0:
		return fail("-duration must be positive")
	case c.setupConc < 1:
		return fail("-setup-concurrency must be at least 1")
	case c.sample <= 0:
		return fail("-sample must be positive")
	}
	c.adminToken = getenv("EASBENCH_ADMIN_TOKEN")
	if c.spawn {
		if c.easURL != "" || c.imapAddr != "" || c.adminURL != "" || c.pid != 0 {
			return fail("-spawn starts its own servers: leave out -eas, -admin, -imap and -pid")
		}
		return c, nil
	}
	if c.easURL == "" || c.imapAddr == "" {
		return fail("give -spawn, or -eas and -imap of a running gateway and its IMAP server")
	}
	if c.adminURL != "" && c.adminToken == "" {
		return fail("-admin needs the admin token in EASBENCH_ADMIN_TOKEN")
	}
	return c, nil
}

func errOr(err error, msg string) error {
	if err != nil {
		return err
	}
	return errors.New(msg)
}

// parseRate reads "20/s", "600/m", "1.5/h" or a bare number (per second)
// and returns events per second.
func parseRate(s string) (float64, error) {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), "/")
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || n < 0 || n != n || n > 1e6 {
		return 0, fmt.Errorf("rate %q: want a number of events per s, m or h, e.g. 20/s", s)
	}
	switch unit {
	case "", "s":
		return n, nil
	case "m":
		return n / 60, nil
	case "h":
		return n / 3600, nil
	}
	return 0, fmt.Errorf("rate %q: unit %q is not s, m or h", s, unit)
}

// writeJSONFile writes the result to name, or to stdout for "-".
func writeJSONFile(res *result, name string, stdout io.Writer) error {
	if name == "-" {
		return res.writeJSON(stdout)
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if err := res.writeJSON(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// userName is the name of user i (from 1).
func userName(prefix string, i int) string { return fmt.Sprintf("%s%05d", prefix, i) }

func main() {
	if cfg, ok := os.LookupEnv(gatewayEnv); ok {
		os.Exit(runGateway(cfg))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command: it parses args, runs the load and prints the result.
func run(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseArgs(args, os.Getenv, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	res, err := bench(ctx, cfg, stderr)
	if res != nil {
		if cfg.jsonOut != "-" {
			res.writeTable(stdout)
		}
		if cfg.jsonOut != "" {
			if err := writeJSONFile(res, cfg.jsonOut, stdout); err != nil {
				fmt.Fprintln(stderr, "easbench:", err)
			}
		}
	}
	if err != nil {
		fmt.Fprintln(stderr, "easbench:", err)
		return 1
	}
	return 0
}
