package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary serve as the gateway process of the smoke
// test, as the easbench binary does for -spawn.
func TestMain(m *testing.M) {
	if cfg, ok := os.LookupEnv(gatewayEnv); ok {
		os.Exit(runGateway(cfg))
	}
	os.Exit(m.Run())
}

func TestParseRate(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want float64
		ok   bool
	}{
		{"20/s", 20, true},
		{"20", 20, true},
		{"600/m", 10, true},
		{"36/h", 0.01, true},
		{"0", 0, true},
		{" 2.5/s ", 2.5, true},
		{"-1/s", 0, false},
		{"x/s", 0, false},
		{"20/d", 0, false},
		{"NaN", 0, false},
		{"", 0, false},
	} {
		got, err := parseRate(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseRate(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestParseArgs(t *testing.T) {
	env := func(token string) func(string) string {
		return func(k string) string {
			if k == tokenEnv {
				return token
			}
			return ""
		}
	}
	for _, tc := range []struct {
		name  string
		args  []string
		token string
		err   error
		check func(c config) bool
	}{
		{"spawn", []string{"-spawn", "-users", "2000", "-pings", "10000", "-rate", "20/s", "-duration", "2m"}, "", nil,
			func(c config) bool {
				return c.spawn && c.users == 2000 && c.pings == 10000 && c.rate == 20 && c.duration == 2*time.Minute &&
					c.heartbeat == 15*time.Minute && c.ramp == 200 && c.prefix == "bench"
			}},
		{"external", []string{"-eas", "http://127.0.0.1:8080/", "-imap", "127.0.0.1:143", "-admin", "http://127.0.0.1:8081", "-pid", "42"}, "tok", nil,
			func(c config) bool {
				return !c.spawn && c.easURL == "http://127.0.0.1:8080/" && c.adminToken == "tok" && c.pid == 42
			}},
		{"neither", []string{"-users", "5"}, "", errUsage, nil},
		{"spawn with eas", []string{"-spawn", "-eas", "http://x"}, "", errUsage, nil},
		{"admin without token", []string{"-eas", "http://x", "-imap", "h:1", "-admin", "http://y"}, "", errUsage, nil},
		{"fewer pings than users", []string{"-spawn", "-users", "10", "-pings", "5"}, "", errUsage, nil},
		{"no users", []string{"-spawn", "-users", "0"}, "", errUsage, nil},
		{"heartbeat not whole seconds", []string{"-spawn", "-heartbeat", "1500ms"}, "", errUsage, nil},
		{"bad rate", []string{"-spawn", "-rate", "fast"}, "", errUsage, nil},
		{"zero ramp", []string{"-spawn", "-ramp", "0"}, "", errUsage, nil},
		{"stray argument", []string{"-spawn", "now"}, "", errUsage, nil},
		{"unknown flag", []string{"-spawn", "-bogus"}, "", errUsage, nil},
		{"help", []string{"-h"}, "", flag.ErrHelp, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			c, err := parseArgs(tc.args, env(tc.token), &stderr)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err = %v, want %v (stderr %s)", err, tc.err, stderr.String())
			}
			if tc.err != nil && stderr.Len() == 0 {
				t.Error("refused without a message")
			}
			if tc.check != nil && !tc.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var d []time.Duration
		for _, n := range ns {
			d = append(d, time.Duration(n)*time.Millisecond)
		}
		return d
	}
	// 1..100 ms shuffled: the nearest-rank p-th percentile is p ms.
	var hundred []time.Duration
	for i := 100; i >= 1; i-- {
		hundred = append(hundred, time.Duration(i)*time.Millisecond)
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		want latencySummary
	}{
		{"none", nil, latencySummary{}},
		{"one", ms(7), latencySummary{N: 1, Min: 7 * time.Millisecond, P50: 7 * time.Millisecond, P90: 7 * time.Millisecond, P99: 7 * time.Millisecond, Max: 7 * time.Millisecond}},
		{"four", ms(40, 10, 30, 20), latencySummary{N: 4, Min: 10 * time.Millisecond, P50: 20 * time.Millisecond, P90: 40 * time.Millisecond, P99: 40 * time.Millisecond, Max: 40 * time.Millisecond}},
		{"hundred", hundred, latencySummary{N: 100, Min: time.Millisecond, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}},
	} {
		if got := summarize(tc.in); got != tc.want {
			t.Errorf("%s: summarize = %+v, want %+v", tc.name, got, tc.want)
		}
	}
	var l latencies
	for _, d := range ms(3, 1, 2) {
		l.add(d)
	}
	if s := l.summary(); s.N != 3 || s.P50 != 2*time.Millisecond || len(l.d) != 3 || l.d[0] != 3*time.Millisecond {
		t.Errorf("latencies: %+v, kept %v (summary must not reorder what it holds)", s, l.d)
	}
}

func TestUserAppends(t *testing.T) {
	base := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return base.Add(time.Duration(s) * time.Second) }
	u := &benchUser{name: "bench00001"}
	a := u.begin(at(0))
	b := u.begin(at(1))
	c := u.begin(at(2))
	// A wake that overtakes the APPEND's OK is timed from the APPEND.
	if got, ok := u.firstAfter(0); !ok || !got.Equal(at(0)) {
		t.Errorf("firstAfter(0) before any OK = %v %v", got, ok)
	}
	u.end(a, at(3), errors.New("NO"))
	u.end(c, at(4), nil)
	u.end(b, at(5), nil)
	// a failed: the first message received is b's, the second c's.
	for n, want := range []int{0, 2, 3, 3} {
		if got := u.indexAfter(n); got != want {
			t.Errorf("indexAfter(%d) = %d, want %d", n, got, want)
		}
	}
	if got, ok := u.firstAfter(0); !ok || !got.Equal(at(5)) {
		t.Errorf("firstAfter(0) = %v %v, want b's OK (a failed)", got, ok)
	}
	if got, ok := u.firstAfter(2); !ok || !got.Equal(at(4)) {
		t.Errorf("firstAfter(2) = %v %v, want c's OK", got, ok)
	}
	if _, ok := u.firstAfter(3); ok {
		t.Error("firstAfter past the end found an append")
	}
	if n := u.unseen(0); n != 2 {
		t.Errorf("unseen(0) = %d, want 2 (the failed one does not count)", n)
	}
	if n := u.unseen(9); n != 0 {
		t.Errorf("unseen(9) = %d", n)
	}
}

func TestStatusField(t *testing.T) {
	text := "Name:\teasbench\nVmHWM:\t  123456 kB\nVmRSS:\t   65432 kB\nThreads:\t7\n"
	for field, want := range map[string]int64{"VmRSS": 65432 * 1024, "VmHWM": 123456 * 1024, "Threads": -1, "VmSwap": -1} {
		if got := statusField(text, field); got != want {
			t.Errorf("statusField(%s) = %d, want %d", field, got, want)
		}
	}
	if rss := procStatus(os.Getpid(), "VmRSS"); rss <= 0 {
		t.Errorf("own VmRSS = %d", rss)
	}
	if rss := procStatus(0, "VmRSS"); rss != -1 {
		t.Errorf("pid 0: %d", rss)
	}
}

func TestParseMetrics(t *testing.T) {
	text := "# HELP go_goroutines Number of goroutines that currently exist.\n# TYPE go_goroutines gauge\n" +
		"go_goroutines 10042\ngo_goroutines_total_bogus 5\nprocess_resident_memory_bytes 3.0539776e+08\n" +
		"go_memstats_alloc_bytes 1.2e+07\n"
	g, rss := parseMetrics(strings.NewReader(text))
	if g != 10042 || rss != 305397760 {
		t.Errorf("parseMetrics = %d, %d", g, rss)
	}
	if g, rss := parseMetrics(strings.NewReader("nothing here\n")); g != -1 || rss != -1 {
		t.Errorf("empty: %d, %d", g, rss)
	}
}

func TestCountConnections(t *testing.T) {
	if got := procAddr(net.ParseIP("127.0.0.1"), 143); got != "0100007F:008F" {
		t.Errorf("procAddr = %s", got)
	}
	if got := procAddr6(net.ParseIP("127.0.0.1"), 143); got != "0000000000000000FFFF00000100007F:008F" {
		t.Errorf("procAddr6 = %s", got)
	}
	table := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0100007F:A001 0100007F:008F 01 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 20 4 30 10 -1\n" +
		"   1: 0100007F:A002 0100007F:008F 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 20 4 30 10 -1\n" +
		"   2: 0100007F:A003 0100007F:008F 06 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 20 4 30 10 -1\n" +
		"   3: 0100007F:A004 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 1004 1 0 20 4 30 10 -1\n" +
		"   4: 0100007F:A005 0100007F:008F 01 00000000:00000000 00:00000000 00000000     0        0 9999 1 0 20 4 30 10 -1\n"
	inodes := map[string]bool{"1001": true, "1002": true, "1003": true, "1004": true}
	// 1003 is TIME_WAIT, 1004 goes elsewhere, 9999 is another process's.
	if n := countConnections(strings.NewReader(table), inodes, "127.0.0.1", "143"); n != 2 {
		t.Errorf("countConnections = %d, want 2", n)
	}

	// Our own process: one connection to a listener we open.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := imapConnections(os.Getpid(), ln.Addr().String()); n != 1 {
		t.Errorf("imapConnections(self) = %d, want 1", n)
	}
}

func TestDovecotLimits(t *testing.T) {
	conf, procs, clients := dovecotLimits(12000, 0)
	if clients*((procs-16)/2) < 12000 || (procs-16)/2 > maxDovecotProcesses {
		t.Errorf("layout %d processes × %d clients for 12000 connections", procs, clients)
	}
	for _, want := range []string{"service_count = 0", "client_limit = 188", "mail_max_userip_connections = 12016", "service imap-login {", "service anvil {"} {
		if !strings.Contains(conf, want) {
			t.Errorf("configuration lacks %q:\n%s", want, conf)
		}
	}
	if _, _, clients := dovecotLimits(100, 1); clients != 1 {
		t.Errorf("explicit one client per process: %d", clients)
	}
}

// TestSmoke runs the whole tool at a small scale against a spawned
// Dovecot, redis-server and gateway process, so that it keeps working. It
// checks what happened, never how fast.
func TestSmoke(t *testing.T) {
	cfg, err := parseArgs([]string{"-spawn", "-users", "5", "-pings", "20", "-rate", "10/s", "-duration", "3s",
		"-settle", "1s", "-drain", "60s", "-sample", "500ms", "-setup-concurrency", "4",
		// One connection per Dovecot process: see docs/benchmarks.md
		// (several IDLEs of one user in one process lose wake-ups).
		"-dovecot-clients", "1",
		"-gateway-log", t.TempDir() + "/gateway.log"}, os.Getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	res, err := bench(ctx, cfg, &progress)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, progress.String())
	}
	var table bytes.Buffer
	res.writeTable(&table)
	t.Logf("\n%s", table.String())
	if res.Appends == 0 || res.AppendErrors != 0 {
		t.Errorf("appends: %d done, %d failed", res.Appends, res.AppendErrors)
	}
	if res.PingErrors != 0 || res.SyncErrors != 0 || len(res.OtherStatus) != 0 || res.Spurious != 0 {
		t.Errorf("errors: Ping %d, Sync %d, other statuses %v, spurious %d", res.PingErrors, res.SyncErrors, res.OtherStatus, res.Spurious)
	}
	if res.Unseen != 0 || res.Wakes == 0 || res.Latency.N != int(res.Wakes) {
		t.Errorf("wakes %d, latencies %d, device-appends never seen %d", res.Wakes, res.Latency.N, res.Unseen)
	}
	if res.Peak.Pinging != 20 {
		t.Errorf("at most %d Pings held, want 20", res.Peak.Pinging)
	}
	s := res.Steady
	if s.RSS <= 0 || s.Goroutines <= 0 || s.GatewayIMAP <= 0 || s.ServerIMAP <= 0 || s.MaxPerUser <= 0 {
		t.Errorf("steady sample not measured: %+v", s)
	}
	var js bytes.Buffer
	if err := res.writeJSON(&js); err != nil || !strings.Contains(js.String(), `"Wakes"`) {
		t.Errorf("JSON: %v\n%s", err, js.String())
	}
}
