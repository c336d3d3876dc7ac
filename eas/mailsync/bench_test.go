package mailsync_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/redis/go-redis/v9"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/backend/testsrv"
	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/devices/redisstore"
	"github.com/easgate/easgate/devices/redistest"
	"github.com/easgate/easgate/eas/internal/heapmeter"
	"github.com/easgate/easgate/eas/mailitem"
	"github.com/easgate/easgate/eas/mailsync"
)

const benchMessages = 2000

// benchEnv starts Dovecot with benchMessages messages in INBOX, a third
// of them \Seen and every seventh \Flagged (so the flag sets are
// fragmented as in a real mailbox).
func benchEnv(b *testing.B) (*env, *testsrv.Dovecot) {
	d := testsrv.StartDovecot(b, nil)
	e := newEnv(b, d.Addr, d.Users)
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 40)
	for i := 1; i <= benchMessages; i++ {
		raw := fmt.Sprintf("From: Sender %d <s%d@example.com>\r\nTo: alice@example.com\r\nSubject: message %d\r\nDate: %s\r\nMessage-ID: <m%d@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
			i, i, i, day0.Format(time.RFC1123Z), i, body)
		var flags []imap.Flag
		if i%3 == 0 {
			flags = append(flags, imap.FlagSeen)
		}
		if i%7 == 0 {
			flags = append(flags, imap.FlagFlagged)
		}
		cmd := e.out.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: day0, Flags: flags})
		cmd.Write([]byte(raw))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	return e, d
}

// initialSync primes a new device and syncs the whole INBOX (inbox, as
// FolderSync gave it to the phone before) in windows of 512; it returns
// the device's last key.
func initialSync(b *testing.B, e *env, inbox backend.FolderID, device string) string {
	req := e.request("1", inbox, "0", 512)
	req.Device = device
	r := e.sync(req)
	key := r.SyncKey
	total := 0
	for {
		req := e.request("1", inbox, key, 512)
		req.Device = device
		r := e.sync(req)
		total += len(r.Adds)
		key = r.SyncKey
		if !r.MoreAvailable {
			break
		}
	}
	if total != benchMessages {
		b.Fatalf("initial sync added %d, want %d", total, benchMessages)
	}
	return key
}

// BenchmarkSync measures, on Dovecot with a 2,000-message INBOX: the
// stored state's size per message, a Sync that finds nothing changed, and
// the initial sync (WindowSize 512, plain text cut at 500 bytes) against
// one raw go-imap FETCH of the same FETCH items from the same server, with
// the sync state in the embedded store (bbolt, a file synced to disk on
// every write) and in Redis.
func BenchmarkSync(b *testing.B) {
	e, d := benchEnv(b)
	addr, users := d.Addr, d.Users
	inbox := e.folder("INBOX")
	key := initialSync(b, e, inbox, "state")

	b.Run("state-bytes", func(b *testing.B) {
		for b.Loop() {
			st, err := e.eng.Store.LatestSyncState(e.ctx, "alice", "state", "1")
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(len(st.Data))/benchMessages, "bytes/msg")
		}
	})
	b.Run("no-change", func(b *testing.B) {
		for b.Loop() {
			req := e.request("1", inbox, key, 512)
			req.Device = "state"
			r := e.sync(req)
			if r.Scan != backend.ScanSkipped {
				b.Fatalf("scan %v, want skipped", r.Scan)
			}
			if !r.Unchanged {
				b.Fatal("changes found")
			}
		}
	})
	b.Run("changes-only", func(b *testing.B) {
		st, err := e.eng.Store.LatestSyncState(e.ctx, "alice", "state", "1")
		if err != nil {
			b.Fatal(err)
		}
		snap := mailsync.SnapshotForBench(st.Data)
		for b.Loop() {
			cs, err := e.sess.Changes(e.ctx, inbox, snap, time.Time{})
			if err != nil || cs.Scan != backend.ScanSkipped {
				b.Fatalf("%v %v", err, cs.Scan)
			}
		}
	})
	n := 0
	engine := func(e *env) func(b *testing.B) {
		return func(b *testing.B) {
			n++
			dev := fmt.Sprintf("dev%d", n)
			initialSync(b, e, inbox, dev)
			if err := e.eng.Store.DeleteSyncStates(e.ctx, "alice", dev, "1"); err != nil && err != devices.ErrNotFound {
				b.Fatal(err)
			}
		}
	}
	raw := rawFetcher(b, addr, users)
	b.Run("initial-engine", func(b *testing.B) {
		cpu := startCPU(d.PID)
		for b.Loop() {
			engine(e)(b)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchMessages, "ns/msg")
		cpu.report(b)
	})
	b.Run("initial-raw-fetch", func(b *testing.B) {
		cpu := startCPU(d.PID)
		for b.Loop() {
			raw(b)
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchMessages, "ns/msg")
		cpu.report(b)
	})
	// The two above one after the other in each round, so that both
	// meet the same load on a shared machine: the medians and their
	// ratio (raw÷engine, the goal is ≥ 0.7).
	ratio := func(engine func(*testing.B)) func(*testing.B) {
		return func(b *testing.B) {
			var te, tr []time.Duration
			for b.Loop() {
				t := time.Now()
				engine(b)
				te = append(te, time.Since(t))
				t = time.Now()
				raw(b)
				tr = append(tr, time.Since(t))
			}
			me, mr := median(te), median(tr)
			b.ReportMetric(float64(me.Microseconds())/1000, "engine-ms")
			b.ReportMetric(float64(mr.Microseconds())/1000, "raw-ms")
			b.ReportMetric(float64(mr)/float64(me), "raw/engine")
		}
	}
	b.Run("initial-ratio", ratio(engine(e)))
	// The same with the sync state in Redis, as a gateway of several
	// instances keeps it: a write is one round trip, not a file sync.
	rs := redistest.Start(b)
	rstore, err := redisstore.New(redis.NewClient(&redis.Options{Addr: rs.Addr}))
	if err != nil {
		b.Fatal(err)
	}
	er := *e
	er.eng = &mailsync.Engine{Store: rstore}
	b.Run("initial-ratio-redis", ratio(engine(&er)))
}

// rawFetcher returns the raw go-imap read of the benchmark's INBOX the
// engine is compared with: one UID FETCH of every message, on a
// connection of its own with INBOX selected read-only.
func rawFetcher(b *testing.B, addr string, users map[string]string) func(*testing.B) {
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if err := c.Login("alice", users["alice"]).Wait(); err != nil {
		b.Fatal(err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatal(err)
	}
	// The fields an item needs, as the engine's read of a window asks
	// for them: flags, date and size (no ENVELOPE or BODYSTRUCTURE: the
	// item is made from the header and the MIME structure found in the
	// message) and each message whole up to mailsync.WholeMessageMax
	// (these are all smaller: header and plain text, of which the item
	// needs 3×500+1024 bytes, more than the whole text). The cheapest
	// FETCH of these fields measured (docs/benchmarks.md).
	opts := &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{
			{Peek: true, Partial: &imap.SectionPartial{Offset: 0, Size: mailsync.WholeMessageMax + 1}},
		},
	}
	return func(b *testing.B) {
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, opts).Collect()
		if err != nil || len(msgs) != benchMessages {
			b.Fatalf("FETCH: %v (%d)", err, len(msgs))
		}
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// cpuMeter measures the CPU time the benchmark's own process and the
// Dovecot instance (its process group) spent, so that a run on a shared
// machine shows where the time went, not only how long it took.
type cpuMeter struct {
	pgid      int
	self, dov time.Duration
}

func startCPU(pgid int) cpuMeter { return cpuMeter{pgid, selfCPU(), groupCPU(pgid)} }

// report adds the CPU time per op since startCPU to b's metrics.
func (m cpuMeter) report(b *testing.B) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
	b.ReportMetric(ms(selfCPU()-m.self), "gw-cpu-ms/op")
	b.ReportMetric(ms(groupCPU(m.pgid)-m.dov), "dovecot-cpu-ms/op")
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// groupCPU sums user and system time of the processes in group pgid from
// /proc (in clock ticks of 10 ms); 0 where there is no /proc.
func groupCPU(pgid int) time.Duration {
	ents, _ := os.ReadDir("/proc")
	var ticks int64
	for _, e := range ents {
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after "(comm) ": state ppid pgrp ... utime(14) stime(15).
		s := string(data)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 || f[2] != strconv.Itoa(pgid) {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		ticks += u + st
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// BenchmarkSyncLargeMIME measures the heap an initial sync holds at its
// peak when the phone asks for whole MIME messages (Type 4, no
// TruncationSize) in windows of 25, on a folder of 24 messages of 4 MB:
// with the default response budget (Engine.MaxResponseBytes, 32 MiB)
// and without one (the whole window built at once).
func BenchmarkSyncLargeMIME(b *testing.B) {
	const messages, attachment = 24, 3 << 20
	d := testsrv.StartDovecot(b, nil)
	e := newEnv(b, d.Addr, d.Users)
	enc := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("0123456789abcdef"), attachment/16))
	var lines strings.Builder
	for len(enc) > 76 {
		lines.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	lines.WriteString(enc + "\r\n")
	for i := range messages {
		raw := fmt.Sprintf("From: a@example.com\r\nTo: alice@example.com\r\nSubject: big %d\r\nMessage-ID: <big%d@example.com>\r\n"+
			"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"+
			"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n%s--b--\r\n", i, i, lines.String())
		cmd := e.out.Append("Work", int64(len(raw)), &imap.AppendOptions{Time: day0})
		cmd.Write([]byte(raw))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			b.Fatal(err)
		}
	}
	work := e.folder("Work")
	n := 0
	for _, c := range []struct {
		name  string
		limit int64
	}{{"budget-32MiB", 0}, {"no-budget", 1 << 40}} {
		b.Run(c.name, func(b *testing.B) {
			e.eng.MaxResponseBytes = c.limit
			var worst uint64
			rounds := 0
			for b.Loop() {
				n++
				dev := fmt.Sprintf("big%d", n)
				request := func(key string) *mailsync.Request {
					req := e.request("2", work, key, 25)
					req.Device = dev
					req.Options.Item.MIMESupport = mailitem.MIMEAlways
					req.Options.Item.BodyPreferences = []mailitem.BodyPreference{{Type: mailitem.BodyMIME}}
					return req
				}
				peak, _ := heapmeter.Growth(func() {
					key := e.sync(request("0")).SyncKey
					got := 0
					for {
						r := e.sync(request(key))
						rounds++
						got += len(r.Adds)
						key = r.SyncKey
						if !r.MoreAvailable {
							break
						}
					}
					if got != messages {
						b.Fatalf("%d adds, want %d", got, messages)
					}
				})
				worst = max(worst, peak)
			}
			b.ReportMetric(float64(worst)/(1<<20), "heap-MB")
			b.ReportMetric(float64(rounds)/float64(b.N), "rounds")
		})
	}
}
