package imapstore

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easgate/easgate/backend"
)

// fetch is the FETCH of one ContentRequest: its options and the body
// sections in them that Contents hands over.
type fetch struct {
	opts *imap.FetchOptions
	fetchItems
}

// fetchItems are the body sections of a request's FETCH.
type fetchItems struct {
	whole *imap.FetchItemBodySection
	hdr   *imap.FetchItemBodySection
	parts []*imap.FetchItemBodySection
}

// Contents implements backend.Session: one UID FETCH per request, with
// BODY.PEEK[], BODY.PEEK[HEADER] and BODY.PEEK[part]<0.limit> items
// (RFC 9051 6.4.5) and, for a summary, the items Summaries fetches but
// ENVELOPE, on one connection and one SELECT, inFlight of them pipelined.
// Each message is read off the wire (its literals read fully) and handed
// to f as it arrives, so only a message or two per FETCH on the wire is
// held here.
//
// If the connection breaks and the operation is retried on a new one,
// messages f already got are not read again.
func (s *session) Contents(ctx context.Context, id backend.FolderID, reqs []backend.ContentRequest, f func(backend.Contents) error) error {
	fetches := make([]fetch, len(reqs))
	for i, r := range reqs {
		ft := fetch{opts: &imap.FetchOptions{UID: true}}
		if r.Summary {
			ft.opts = summaryItems()
			ft.opts.Envelope = false
			if r.NoStructure {
				ft.opts.BodyStructure = nil
			}
		}
		if r.Whole {
			ft.whole = &imap.FetchItemBodySection{Peek: true, Partial: partial(r.WholeLimit)}
			ft.opts.BodySection = append(ft.opts.BodySection, ft.whole)
		}
		if r.Header {
			ft.hdr = &imap.FetchItemBodySection{Peek: true, Specifier: imap.PartSpecifierHeader}
			ft.opts.BodySection = append(ft.opts.BodySection, ft.hdr)
		}
		for _, sr := range r.Sections {
			sec, ok := parseSection(sr.Part)
			if !ok || sr.Part == "" {
				return fmt.Errorf("%w: %q", backend.ErrInvalidSection, sr.Part)
			}
			for _, other := range ft.opts.BodySection {
				if sameSection(sec, other) {
					// The server answers both with one item: no way to
					// tell their lengths apart.
					return fmt.Errorf("%w: %q asked for twice in one request", backend.ErrInvalidSection, sr.Part)
				}
			}
			sec.Partial = partial(sr.Limit)
			ft.parts = append(ft.parts, sec)
			ft.opts.BodySection = append(ft.opts.BodySection, sec)
		}
		fetches[i] = ft
	}
	// done[i] are the messages of request i already handed to f, so that
	// a retry on a new connection does not hand them over twice.
	done := make([]backend.UIDSet, len(reqs))
	var stopped error
	err := s.do(ctx, func(c *conn) error {
		if err := examineFolder(c, id); err != nil {
			return err
		}
		return fetchAll(c, reqs, fetches, done, &stopped, f)
	})
	if err != nil {
		return err
	}
	return stopped
}

// inFlight is how many requests' FETCH commands Contents keeps on the
// wire at once: the next is sent while the one before is still being
// read, so the server goes on without waiting for a round trip (sending
// them one after another was a tenth of the time of reading a Sync window
// in chunks).
const inFlight = 2

// fetchAll runs the FETCH of each request with messages not yet done on
// c, up to inFlight at once (RFC 9051 5.5: UID FETCH commands may be
// pipelined), and hands the messages to f one at a time, in the order
// they arrive. Servers may interleave the answers of pipelined commands
// (Dovecot does), and go-imap hands a message's literal to its command's
// reader only, so each command is read on a goroutine of its own, which
// calls f itself (under mu: never two calls at once). After an error, or
// once f returned one (*stopped), the commands still running are read to
// their end without handing anything over.
func fetchAll(c *conn, reqs []backend.ContentRequest, fetches []fetch, done []backend.UIDSet, stopped *error, f func(backend.Contents) error) error {
	var (
		mu            sync.Mutex // guards what follows, and calls of f
		failed        error
		running, next int
		onWire        = make([]bool, len(reqs))
		uids          = make([]backend.UIDSet, len(reqs)) // set when a request starts
		wg            sync.WaitGroup
	)
	// end records that request i's FETCH ended with err and starts the
	// next ones.
	var start func() bool
	end := func(i int, err error) {
		mu.Lock()
		defer mu.Unlock()
		running--
		onWire[i] = false
		switch {
		case err != nil && failed == nil:
			failed = fmt.Errorf("UID FETCH contents: %w", err)
			if isNo(err) {
				failed = fmt.Errorf("%w: %s: %w", backend.ErrInvalidSection, describe(reqs[i]), err)
			}
		case failed == nil && *stopped == nil:
			for running < inFlight && start() {
			}
		}
	}
	// read reads request i's FETCH to its end (on its own goroutine).
	read := func(i int, cmd *imapclient.FetchCommand) {
		r, ft := reqs[i], fetches[i]
		for {
			msg := cmd.Next()
			if msg == nil {
				break
			}
			buf, err := collect(msg)
			if err != nil {
				cmd.Close()
				end(i, err)
				return
			}
			uid := backend.UID(buf.UID)
			if uid == 0 || !uids[i].Contains(uid) || done[i].Contains(uid) {
				continue // unsolicited, or a second response for one message
			}
			got := backend.Contents{UID: uid, Request: i}
			if r.Summary {
				sum := toSummary(buf)
				got.Summary = &sum
			}
			if ft.whole != nil {
				got.Whole = nonNil(buf.FindBodySection(ft.whole))
			}
			if ft.hdr != nil {
				got.Header = nonNil(buf.FindBodySection(ft.hdr))
			}
			if len(ft.parts) > 0 {
				got.Sections = make([][]byte, len(ft.parts))
				for j, sec := range ft.parts {
					got.Sections[j] = nonNil(buf.FindBodySection(sec))
				}
			}
			mu.Lock()
			if failed == nil && *stopped == nil {
				done[i].AddUID(uid)
				*stopped = f(got)
			}
			mu.Unlock()
		}
		end(i, cmd.Close())
	}
	// start sends the next request's FETCH, if it may go on the wire now;
	// called with mu held.
	start = func() bool {
		for ; next < len(reqs); next++ {
			i, r := next, reqs[next]
			uids[i] = r.UIDs.Diff(done[i])
			if uids[i].Len() == 0 || (!r.Summary && !r.Whole && !r.Header && len(r.Sections) == 0) {
				continue
			}
			for j := range i {
				// go-imap gives a message to the first command that
				// asked for it and has not had it yet: two commands
				// on the wire must not share a message, or one could
				// get the other's answer.
				if onWire[j] && uids[i].Intersect(uids[j]).Len() > 0 {
					return false
				}
			}
			next++
			running++
			onWire[i] = true
			cmd := c.client.Fetch(toIMAPUIDs(uids[i]), fetches[i].opts)
			wg.Go(func() { read(i, cmd) })
			return true
		}
		return false
	}
	mu.Lock()
	for running < inFlight && start() {
	}
	mu.Unlock()
	wg.Wait()
	return failed
}

// maxPrealloc is the largest literal collect allocates at its announced
// size before reading it; a larger one is read as it comes, so a server
// cannot make the gateway allocate what it does not send.
const maxPrealloc = 16 << 20

// collect reads one message of a FETCH response as
// FetchMessageData.Collect does, for the items Contents asks for, but
// reads each literal into a buffer of its announced size at once, where
// Collect grows one with io.ReadAll (a tenth of the CPU time of reading a
// Sync window, most of it copying and clearing memory).
func collect(msg *imapclient.FetchMessageData) (*imapclient.FetchMessageBuffer, error) {
	buf := &imapclient.FetchMessageBuffer{SeqNum: msg.SeqNum}
	for {
		item := msg.Next()
		if item == nil {
			return buf, nil
		}
		switch item := item.(type) {
		case imapclient.FetchItemDataUID:
			buf.UID = item.UID
		case imapclient.FetchItemDataFlags:
			buf.Flags = item.Flags
		case imapclient.FetchItemDataInternalDate:
			buf.InternalDate = item.Time
		case imapclient.FetchItemDataRFC822Size:
			buf.RFC822Size = item.Size
		case imapclient.FetchItemDataBodyStructure:
			buf.BodyStructure = item.BodyStructure
		case imapclient.FetchItemDataEnvelope:
			buf.Envelope = item.Envelope
		case imapclient.FetchItemDataModSeq:
			buf.ModSeq = item.ModSeq
		case imapclient.FetchItemDataBodySection:
			var b []byte
			if lit := item.Literal; lit != nil {
				var err error
				if n := lit.Size(); n >= 0 && n <= maxPrealloc {
					b = backend.Bytes(int(n))
					_, err = io.ReadFull(lit, b)
				} else {
					b, err = io.ReadAll(lit)
				}
				if err != nil {
					for msg.Next() != nil {
					}
					return buf, err
				}
			}
			buf.BodySection = append(buf.BodySection, imapclient.FetchBodySectionBuffer{Section: item.Section, Bytes: b})
		}
		// Other items (none is asked for) are skipped; Next discards
		// their literals.
	}
}

// partial is the <0.limit> of a section read; nil reads it all.
func partial(limit int64) *imap.SectionPartial {
	if limit <= 0 {
		return nil
	}
	return &imap.SectionPartial{Offset: 0, Size: min(limit, math.MaxUint32)}
}

// sameSection reports whether two sections name the same item, as the
// server's answer names it (without the partial's size).
func sameSection(a, b *imap.FetchItemBodySection) bool {
	if a.Specifier != b.Specifier || len(a.Part) != len(b.Part) {
		return false
	}
	for i := range a.Part {
		if a.Part[i] != b.Part[i] {
			return false
		}
	}
	return true
}

// describe names a request's items for an error message.
func describe(r backend.ContentRequest) string {
	var items []string
	if r.Whole {
		items = append(items, "BODY[]")
	}
	if r.Header {
		items = append(items, "BODY[HEADER]")
	}
	for _, sr := range r.Sections {
		items = append(items, "BODY["+sr.Part+"]")
	}
	return strings.Join(items, " ")
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
