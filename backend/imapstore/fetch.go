package imapstore

import (
	"context"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easgate/easgate/backend"
)

// Contents implements backend.Session: one UID FETCH per request, with
// BODY.PEEK[], BODY.PEEK[HEADER] and BODY.PEEK[part]<0.limit> items
// (RFC 9051 6.4.5) and, for a summary, the items Summaries fetches but
// ENVELOPE, on one connection and one SELECT. Each message is
// read off the wire (its literals read fully) and handed to f before the
// next one is read, so only one message at a time is held here.
//
// If the connection breaks and the operation is retried on a new one,
// messages f already got are not read again.
func (s *session) Contents(ctx context.Context, id backend.FolderID, reqs []backend.ContentRequest, f func(backend.Contents) error) error {
	type fetch struct {
		opts  *imap.FetchOptions
		whole *imap.FetchItemBodySection
		hdr   *imap.FetchItemBodySection
		parts []*imap.FetchItemBodySection
	}
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
		for i, r := range reqs {
			uids := r.UIDs.Diff(done[i])
			if uids.Len() == 0 || (!r.Summary && !r.Whole && !r.Header && len(r.Sections) == 0) {
				continue
			}
			ft := fetches[i]
			cmd := c.client.Fetch(toIMAPUIDs(uids), ft.opts)
			for stopped == nil {
				msg := cmd.Next()
				if msg == nil {
					break
				}
				buf, err := collect(msg)
				if err != nil {
					cmd.Close()
					return fmt.Errorf("UID FETCH contents: %w", err)
				}
				uid := backend.UID(buf.UID)
				if uid == 0 || !uids.Contains(uid) || done[i].Contains(uid) {
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
				done[i].AddUID(uid)
				stopped = f(got)
			}
			if err := cmd.Close(); err != nil {
				if isNo(err) {
					return fmt.Errorf("%w: %s: %w", backend.ErrInvalidSection, describe(r), err)
				}
				return fmt.Errorf("UID FETCH contents: %w", err)
			}
			if stopped != nil {
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return stopped
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
					b = make([]byte, n)
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
