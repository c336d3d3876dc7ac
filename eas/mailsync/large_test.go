package mailsync_test

import (
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// largeFolder is the message count of TestLargeFolder (issue: "a
// 10,000-message folder").
const largeFolder = 10000

// TestLargeFolder: a 10,000-message INBOX is synced in windows of 512 with
// nothing lost or doubled; then webmail flags, expunges and appends, and
// one more round brings the phone level with IMAP again; the stored state
// stays small.
func TestLargeFolder(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the 10,000-message folder takes a while")
	}
	forEachServer(t, func(t *testing.T, e *env) {
		start := time.Now()
		cmds := make([]*imapclient.AppendCommand, 0, largeFolder)
		for i := 1; i <= largeFolder; i++ {
			raw := message(i, day0)
			var flags []imap.Flag
			if i%3 == 0 {
				flags = append(flags, imap.FlagSeen)
			}
			cmd := e.out.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: day0, Flags: flags})
			cmd.Write([]byte(raw))
			cmd.Close()
			cmds = append(cmds, cmd)
		}
		for _, cmd := range cmds { // pipelined: wait once all are sent
			if _, err := cmd.Wait(); err != nil {
				t.Fatalf("APPEND: %v", err)
			}
		}
		t.Logf("%d messages appended in %v", largeFolder, time.Since(start))
		start = time.Now()
		inbox := e.folder("INBOX")
		p := newPhone(t, "1")
		p.apply(e.sync(e.request("1", inbox, "0", 512)))
		e.syncAll(p, inbox, 512)
		t.Logf("initial sync in %v", time.Since(start))
		if len(p.items) != largeFolder {
			t.Fatalf("phone has %d items, want %d", len(p.items), largeFolder)
		}
		p.matches(e.imapView("INBOX"))

		st, err := e.eng.Store.LatestSyncState(e.ctx, "alice", "dev1", "1")
		if err != nil {
			t.Fatal(err)
		}
		if perMsg := float64(len(st.Data)) / largeFolder; perMsg > 8 {
			t.Errorf("state is %d bytes, %.1f per message; want at most 8", len(st.Data), perMsg)
		}

		// Webmail changes a spread of messages.
		e.selectBox("INBOX")
		var flag, gone imap.UIDSet
		for uid := imap.UID(7); uid <= largeFolder; uid += 19 {
			flag.AddNum(uid)
		}
		for uid := imap.UID(11); uid <= largeFolder; uid += 97 {
			gone.AddNum(uid)
		}
		if err := e.out.Store(flag, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.out.Store(gone, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if err := e.out.UIDExpunge(gone).Close(); err != nil {
			t.Fatal(err)
		}
		for i := largeFolder + 1; i <= largeFolder+10; i++ {
			e.appendMsg("INBOX", i, time.Now())
		}
		e.syncAll(p, inbox, 512)
		p.matches(e.imapView("INBOX"))
		r := e.sync(e.request("1", inbox, p.key, 512))
		if !r.Unchanged {
			t.Errorf("a Sync after catching up found changes: %d adds, %d changes, %d deletes", len(r.Adds), len(r.Changes), len(r.Deletes))
		}
	})
}
