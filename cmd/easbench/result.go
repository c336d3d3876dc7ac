package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"
)

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

// summary returns the distribution of what was added.
func (l *latencies) summary() latencySummary {
	l.mu.Lock()
	d := slices.Clone(l.d)
	l.mu.Unlock()
	return summarize(d)
}

// latencySummary is a latency distribution. Percentiles are nearest-rank:
// the smallest sample at least p% of the samples are not above.
type latencySummary struct {
	N                  int
	Min, P50, P90, P99 time.Duration
	Max                time.Duration
}

// summarize computes the summary of d (which it sorts).
func summarize(d []time.Duration) latencySummary {
	if len(d) == 0 {
		return latencySummary{}
	}
	slices.Sort(d)
	return latencySummary{
		N: len(d), Min: d[0], Max: d[len(d)-1],
		P50: percentile(d, 50), P90: percentile(d, 90), P99: percentile(d, 99),
	}
}

// percentile returns the nearest-rank p-th percentile of the sorted d:
// d[ceil(p/100·n)-1], clamped to the first sample; 0 for no samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(n))) - 1
	return sorted[min(max(i, 0), n-1)]
}

// sample is one look at the gateway.
type sample struct {
	At          time.Duration `json:"at"`          // since the first Ping was sent
	Phase       string        `json:"phase"`       // "ramp", "settle", "mail" or "drain"
	RSS         int64         `json:"rss"`         // bytes; -1 unknown
	Goroutines  int           `json:"goroutines"`  // -1 unknown
	GatewayIMAP int           `json:"gatewayImap"` // the gateway's ESTABLISHED connections to the IMAP server; -1 unknown
	ServerIMAP  int           `json:"serverImap"`  // IMAP sessions Dovecot counts (doveadm who); -1 unknown
	MaxPerUser  int           `json:"maxPerUser"`  // most sessions of one user (doveadm who); -1 unknown
	Pinging     int           `json:"pinging"`     // Pings the tool holds open
}

// result is what a run measured.
type result struct {
	Users, Pings     int
	Rate             float64 // appends per second asked for
	Duration         time.Duration
	Heartbeat        time.Duration
	Spawned          string        // what -spawn started; "" for an external gateway
	GatewayLog       string        `json:",omitempty"`
	Setup            time.Duration // provisioning every device
	Ramp             time.Duration // sending every Ping
	Appends          int64
	AppendErrors     int64
	AppendSkipped    int64 // ticks with every appender busy
	Wakes            int64 // Ping Status 2
	Spurious         int64 // Status 2 with nothing appended since the device's last Sync
	Expired          int64 // Status 1
	HierarchyChanged int64 // Status 7 (answered with FolderSync)
	OtherStatus      map[int]int64
	PingErrors       int64
	SyncErrors       int64
	Unseen           int64    // appends some device of the user never got a wake for
	UnseenDevices    []string `json:",omitempty"` // the first devices with unseen appends
	Latency          latencySummary
	Steady           sample   // the last sample before mail started
	MailPeak         sample   // the maximum of each field while mail was appended and drained
	Peak             sample   // the maximum of each field over the run (from the first Ping)
	PeakRSSHWM       int64    // VmHWM of the gateway at the end (-1 unknown)
	Samples          []sample `json:",omitempty"`
	DovecotProcesses int      `json:",omitempty"` // with -spawn: imap process_limit × client_limit layout
	DovecotClients   int      `json:",omitempty"`
}

// peakOf folds s into the running maximum p.
func peakOf(p, s sample) sample {
	p.RSS = max(p.RSS, s.RSS)
	p.Goroutines = max(p.Goroutines, s.Goroutines)
	p.GatewayIMAP = max(p.GatewayIMAP, s.GatewayIMAP)
	p.ServerIMAP = max(p.ServerIMAP, s.ServerIMAP)
	p.MaxPerUser = max(p.MaxPerUser, s.MaxPerUser)
	p.Pinging = max(p.Pinging, s.Pinging)
	return p
}

func (r *result) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// mb formats bytes as MB (10^6), "n/a" when unknown.
func mb(b int64) string {
	if b < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f MB", float64(b)/1e6)
}

// count formats a sampled count, "n/a" when unknown.
func count(n int) string {
	if n < 0 {
		return "n/a"
	}
	return fmt.Sprint(n)
}

// verdict compares a measured value with a goal.
func verdict(known, ok bool) string {
	switch {
	case !known:
		return "not measured"
	case ok:
		return "met"
	}
	return "MISSED"
}

// sec formats a duration in seconds with millisecond precision.
func sec(d time.Duration) string { return fmt.Sprintf("%.3fs", d.Seconds()) }

func (r *result) writeTable(w io.Writer) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	p("easbench: %d Pings from %d users, %.2f APPEND/s for %v, heartbeat %v", r.Pings, r.Users, r.Rate, r.Duration, r.Heartbeat)
	if r.Spawned != "" {
		p("spawned     %s", r.Spawned)
	}
	if r.GatewayLog != "" {
		p("gateway log %s", r.GatewayLog)
	}
	p("setup       %v for %d devices (Provision, FolderSync, 2 Syncs each); Pings sent in %v", r.Setup.Round(time.Millisecond), r.Pings, r.Ramp.Round(time.Millisecond))
	p("appends     %d done, %d failed, %d skipped (appenders busy)", r.Appends, r.AppendErrors, r.AppendSkipped)
	p("pings       %d woke (Status 2), %d spurious, %d expired, %d hierarchy changed, %d errors, other statuses %v", r.Wakes, r.Spurious, r.Expired, r.HierarchyChanged, r.PingErrors, r.OtherStatus)
	p("            %d Sync/FolderSync errors; %d device-appends never woke their device (after -drain)", r.SyncErrors, r.Unseen)
	for i, d := range r.UnseenDevices {
		if i == 5 {
			p("            not woken: %d more devices (all in -json)", len(r.UnseenDevices)-i)
			break
		}
		p("            not woken: %s", d)
	}
	l := r.Latency
	p("latency     APPEND done -> Ping Status 2: n %d, min %s, p50 %s, p90 %s, p99 %s, max %s", l.N, sec(l.Min), sec(l.P50), sec(l.P90), sec(l.P99), sec(l.Max))
	p("")
	row := func(name string, f func(sample) string) {
		p("%-26s %14s %14s %14s", name, f(r.Steady), f(r.MailPeak), f(r.Peak))
	}
	p("%-26s %14s %14s %14s", "gateway", "all waiting", "mail (max)", "run (max)")
	row("RSS", func(s sample) string { return mb(s.RSS) })
	row("goroutines", func(s sample) string { return count(s.Goroutines) })
	row("IMAP connections (gateway)", func(s sample) string { return count(s.GatewayIMAP) })
	row("IMAP sessions (Dovecot)", func(s sample) string { return count(s.ServerIMAP) })
	row("sessions of one user", func(s sample) string { return count(s.MaxPerUser) })
	row("Pings held by the tool", func(s sample) string { return count(s.Pinging) })
	if r.PeakRSSHWM >= 0 {
		p("%-26s %14s", "RSS high-water (VmHWM)", mb(r.PeakRSSHWM))
	}
	p("")
	rss := max(r.Peak.RSS, r.PeakRSSHWM)
	conns := func(s sample) int {
		if s.GatewayIMAP >= 0 {
			return s.GatewayIMAP
		}
		return s.ServerIMAP
	}
	steady, mail := conns(r.Steady), conns(r.MailPeak)
	p("goal RSS <= 400 MB (run max):              %s", verdict(rss >= 0, rss <= 400e6))
	p("goal IMAP connections <= %-5d all waiting: %s", r.Users, verdict(steady >= 0, steady <= r.Users))
	p("goal IMAP connections <= %-5d under mail:  %s", r.Users, verdict(mail >= 0, mail <= r.Users))
	p("goal wake p99 <= 1s:                       %s", verdict(l.N > 0, l.P99 <= time.Second))
}
