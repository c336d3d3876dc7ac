package mailsync_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/easgate/easgate/backend/imapstore"
	"github.com/easgate/easgate/backend/testsrv"
	"github.com/easgate/easgate/devices"
)

type traceW struct {
	mu sync.Mutex
	t0 time.Time
	on bool
	b  bytes.Buffer
}

func (w *traceW) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.on {
		return len(p), nil
	}
	for _, line := range strings.Split(string(p), "\n") {
		if len(line) > 2 && line[0] == 'T' && line[1] >= '0' && line[1] <= '9' {
			if len(line) > 100 {
				line = line[:100]
			}
			fmt.Fprintf(&w.b, "%6.1fms %s\n", float64(time.Since(w.t0).Microseconds())/1000, line)
		}
	}
	return len(p), nil
}

type timedStore struct {
	devices.Store
	tw *traceW
}

func (s *timedStore) PutSyncState(ctx context.Context, u, d, c string, base, next *devices.SyncState) error {
	t := time.Now()
	err := s.Store.PutSyncState(ctx, u, d, c, base, next)
	s.tw.mu.Lock()
	fmt.Fprintf(&s.tw.b, "%6.1fms put took %v\n", float64(time.Since(s.tw.t0).Microseconds())/1000, time.Since(t))
	s.tw.mu.Unlock()
	return err
}

func TestZZTrace(t *testing.T) {
	d := testsrv.StartDovecot(t, nil)
	e := newEnv(t, d.Addr, d.Users)
	body := strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 40)
	for i := 1; i <= benchMessages; i++ {
		raw := fmt.Sprintf("From: Sender %d <s%d@example.com>\r\nTo: alice@example.com\r\nSubject: message %d\r\nDate: %s\r\nMessage-ID: <m%d@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n",
			i, i, i, day0.Format(time.RFC1123Z), i, body)
		cmd := e.out.Append("INBOX", int64(len(raw)), nil)
		cmd.Write([]byte(raw))
		cmd.Close()
		cmd.Wait()
	}
	tw := &traceW{}
	st, _ := imapstore.New(imapstore.Options{Addr: d.Addr, DebugWriter: tw})
	sess, _ := st.Open(context.Background(), "alice", d.Users["alice"])
	e.sess = sess
	e.eng.Store = &timedStore{Store: e.eng.Store, tw: tw}
	inbox := e.folder("INBOX")
	for i := 0; i < 4; i++ {
		tw.mu.Lock()
		tw.on = true
		tw.t0 = time.Now()
		tw.b.Reset()
		tw.mu.Unlock()
		req := e.request("1", inbox, "0", 512)
		req.Device = fmt.Sprint("d", i)
		r := e.sync(req)
		for r.SyncKey != "" {
			req := e.request("1", inbox, r.SyncKey, 512)
			req.Device = fmt.Sprint("d", i)
			t0 := time.Now()
			r = e.sync(req)
			tw.mu.Lock()
			fmt.Fprintf(&tw.b, "%6.1fms sync done (%v)\n", float64(time.Since(tw.t0).Microseconds())/1000, time.Since(t0))
			tw.mu.Unlock()
			if !r.MoreAvailable {
				break
			}
		}
		fmt.Fprintf(os.Stderr, "total %v\n", time.Since(tw.t0))
	}
	os.Stderr.Write(tw.b.Bytes())
}
