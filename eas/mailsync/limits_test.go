package mailsync_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/eas/mailitem"
	"github.com/easgate/easgate/eas/mailsync"
	"github.com/easgate/easgate/wbxml"
)

// TestDeadlineStopsEarly: with the response budget spent, the engine stops
// adding, sets MoreAvailable, and the rest comes next time. The clock is
// injected: it moves one second per reading.
func TestDeadlineStopsEarly(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsgs("INBOX", 1, 10, day0)
		inbox := e.folder("INBOX")
		base := time.Now()
		var mu sync.Mutex
		n := 0
		e.eng.Now = func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			n++
			return base.Add(time.Duration(n-1) * time.Second)
		}
		p := newPhone(t, "1")
		p.apply(e.sync(e.request("1", inbox, "0", 50)))
		mu.Lock()
		n = 0
		mu.Unlock()
		req := e.request("1", inbox, p.key, 50)
		req.Deadline = base.Add(4 * time.Second)
		r := e.sync(req)
		if len(r.Adds) != 3 || !r.MoreAvailable {
			t.Fatalf("%d adds, MoreAvailable %v; want 3 and true", len(r.Adds), r.MoreAvailable)
		}
		p.apply(r)
		e.syncAll(p, inbox, 50)
		p.matches(e.imapView("INBOX"))
	})
}

// conflictStore makes the next failures PutSyncState calls lose the race.
type conflictStore struct {
	devices.Store
	mu       sync.Mutex
	failures int
}

func (s *conflictStore) PutSyncState(ctx context.Context, user, device, coll string, base, next *devices.SyncState) error {
	s.mu.Lock()
	fail := s.failures > 0
	if fail {
		s.failures--
	}
	s.mu.Unlock()
	if fail {
		return devices.ErrConflict
	}
	return s.Store.PutSyncState(ctx, user, device, coll, base, next)
}

// TestConflictRetriedOnce: a lost compare-and-set is retried once from
// fresh state without running the client's commands twice; losing twice
// is Status 16 (retry) with the phone's key kept.
func TestConflictRetriedOnce(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		e.appendMsgs("INBOX", 1, 3, day0)
		inbox := e.folder("INBOX")
		cs := &conflictStore{Store: e.eng.Store}
		e.eng.Store = cs
		p := newPhone(t, "1")
		p.apply(e.sync(e.request("1", inbox, "0", 50)))
		e.syncAll(p, inbox, 50)

		cs.failures = 1
		r := e.sync(e.request("1", inbox, p.key, 50, mailsync.Command{Kind: mailsync.CmdDelete, ServerID: "1:1"}))
		if r.Status != mailsync.StatusSuccess || len(r.Responses) != 0 {
			t.Fatalf("after one conflict: status %d, responses %+v", r.Status, r.Responses)
		}
		p.apply(r)
		delete(p.items, "1:1")
		p.matches(e.imapView("INBOX"))

		e.appendMsg("INBOX", 4, day0)
		cs.failures = 2
		r = e.sync(e.request("1", inbox, p.key, 50))
		if r.Status != mailsync.StatusRetry || r.SyncKey != p.key {
			t.Fatalf("after two conflicts: status %d key %q", r.Status, r.SyncKey)
		}
		e.syncAll(p, inbox, 50)
		p.matches(e.imapView("INBOX"))
	})
}

// TestResponseBytesBudget: messages asked for whole (MIME, no
// TruncationSize) fill a response only up to Engine.MaxResponseBytes; the
// rest stays due and comes in the next rounds, each message once and byte
// for byte as IMAP holds it. A message larger than the budget still
// comes, alone.
func TestResponseBytesBudget(t *testing.T) {
	forEachServer(t, func(t *testing.T, e *env) {
		attachment := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("0123456789abcdef"), 18<<10)) // 288 KiB
		var lines strings.Builder
		for len(attachment) > 76 {
			lines.WriteString(attachment[:76] + "\r\n")
			attachment = attachment[76:]
		}
		lines.WriteString(attachment + "\r\n")
		want := make(map[string]bool) // the messages as appended
		sizes := []int{1, 1, 1, 1, 3} // the last one is larger than the budget
		for i, n := range sizes {
			raw := fmt.Sprintf("From: a@example.com\r\nTo: alice@example.com\r\nSubject: big %d\r\nMessage-ID: <big%d@example.com>\r\n"+
				"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"+
				"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n%s--b--\r\n",
				i, i, strings.Repeat(lines.String(), n))
			cmd := e.out.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: day0})
			cmd.Write([]byte(raw))
			cmd.Close()
			if _, err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
			want[raw] = true
		}
		e.eng.MaxResponseBytes = 1000 << 10 // two of the 400 KB messages, not three
		inbox := e.folder("INBOX")
		request := func(key string) *mailsync.Request {
			req := e.request("1", inbox, key, 10)
			req.Options.Item.MIMESupport = mailitem.MIMEAlways
			req.Options.Item.BodyPreferences = []mailitem.BodyPreference{{Type: mailitem.BodyMIME}}
			return req
		}
		p := newPhone(t, "1")
		p.apply(e.sync(request("0")))
		budget := int(e.eng.MaxResponseBytes)
		rounds := 0
		for range 10 {
			r := e.sync(request(p.key))
			p.apply(r)
			rounds++
			total := 0
			for _, it := range r.Adds {
				mime := it.Data.Child(wbxml.AirSyncBaseBody).ChildText(wbxml.AirSyncBaseData)
				if !want[mime] {
					t.Errorf("%s: MIME body of %d bytes is not one of the messages appended (or came twice)", it.ServerID, len(mime))
				}
				delete(want, mime)
				total += len(mime)
			}
			if len(r.Adds) > 1 && total > budget {
				t.Errorf("round %d: %d adds of %d bytes, over the budget of %d", rounds, len(r.Adds), total, budget)
			}
			if !r.MoreAvailable {
				break
			}
		}
		// The others two by two, then the large one alone (admitted in
		// the order they are read).
		if rounds != 3 {
			t.Errorf("%d rounds, want 3", rounds)
		}
		if len(want) != 0 {
			t.Errorf("%d messages never came", len(want))
		}
		p.matches(e.imapView("INBOX"))
	})
}
