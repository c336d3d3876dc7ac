package imapstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easgate/easgate/backend"
)

// Summaries implements backend.Session with UID FETCH (UID FLAGS
// INTERNALDATE RFC822.SIZE ENVELOPE BODYSTRUCTURE).
func (s *session) Summaries(ctx context.Context, id backend.FolderID, uids backend.UIDSet) ([]backend.Summary, error) {
	var out []backend.Summary
	if uids.Len() == 0 {
		return nil, nil
	}
	err := s.do(ctx, func(c *conn) error {
		out = out[:0]
		if err := examineFolder(c, id); err != nil {
			return err
		}
		cmd := c.client.Fetch(toIMAPUIDs(uids), summaryItems())
		defer cmd.Close()
		for {
			msg := cmd.Next()
			if msg == nil {
				break
			}
			buf, err := msg.Collect()
			if err != nil {
				return fmt.Errorf("UID FETCH summary: %w", err)
			}
			if buf.UID == 0 {
				continue
			}
			out = append(out, toSummary(buf))
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("UID FETCH summary: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	sortSummaries(out)
	return out, nil
}

// summaryItems are the FETCH items of a backend.Summary.
func summaryItems() *imap.FetchOptions {
	return &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
	}
}

// toSummary converts a FETCH response of summaryItems.
func toSummary(buf *imapclient.FetchMessageBuffer) backend.Summary {
	sum := backend.Summary{
		UID:      backend.UID(buf.UID),
		Flags:    normalizeFlags(buf.Flags),
		Received: buf.InternalDate,
		Size:     buf.RFC822Size,
		Envelope: toEnvelope(buf.Envelope),
	}
	if buf.BodyStructure != nil {
		sum.Structure = toBodyPart(buf.BodyStructure, nil)
	}
	return sum
}

func sortSummaries(s []backend.Summary) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].UID < s[j-1].UID; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Section implements backend.Session with UID FETCH BODY.PEEK[part]<offset.limit>.
func (s *session) Section(ctx context.Context, id backend.FolderID, uid backend.UID, part string, offset, limit int64) ([]byte, error) {
	if uid == 0 {
		return nil, fmt.Errorf("%w: UID 0", backend.ErrMessageNotFound)
	}
	sec, ok := parseSection(part)
	if !ok || offset < 0 {
		return nil, fmt.Errorf("%w: %q at %d", backend.ErrInvalidSection, part, offset)
	}
	if offset > 0 || limit > 0 {
		size := limit
		if size <= 0 {
			size = math.MaxUint32
		}
		sec.Partial = &imap.SectionPartial{Offset: offset, Size: size}
	}
	var data []byte
	err := s.do(ctx, func(c *conn) error {
		if err := examineFolder(c, id); err != nil {
			return err
		}
		cmd := c.client.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{sec}})
		defer cmd.Close()
		found := false
		for {
			msg := cmd.Next()
			if msg == nil {
				break
			}
			buf, err := msg.Collect()
			if err != nil {
				return fmt.Errorf("UID FETCH BODY.PEEK: %w", err)
			}
			if buf.UID != imap.UID(uid) {
				continue
			}
			found = true
			if len(buf.BodySection) > 0 {
				data = buf.BodySection[0].Bytes
			}
		}
		if err := cmd.Close(); err != nil {
			if isNo(err) {
				return fmt.Errorf("%w: section %q: %w", backend.ErrInvalidSection, part, err)
			}
			return fmt.Errorf("UID FETCH BODY.PEEK: %w", err)
		}
		if !found {
			return fmt.Errorf("%w: UID %d", backend.ErrMessageNotFound, uid)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if data == nil {
		data = []byte{}
	}
	return data, nil
}

// Message implements backend.Session: UID FETCH BODY.PEEK[] streamed from
// the wire (see partReader). The connection stays lent to the reader
// until Close.
func (s *session) Message(ctx context.Context, id backend.FolderID, uid backend.UID) (backend.PartReader, error) {
	if uid == 0 {
		return nil, fmt.Errorf("%w: UID 0", backend.ErrMessageNotFound)
	}
	if s.closed.Load() {
		return nil, backend.ErrClosed
	}
	return lend(ctx, s, func(c *conn) (backend.PartReader, error) {
		r := &partReader{ctx: ctx, c: c, uid: uid, part: "[]", total: -1}
		if err := r.openMessage(c, id); err != nil {
			return nil, err
		}
		return r, nil
	}, func(r backend.PartReader, release func(bool)) { r.(*partReader).release = release })
}

// lend opens, with open, something that keeps a pooled connection until
// it is done with it (a streamed message or part; never the connection of
// a Watch, which would stop watching all that time): on success lent gets
// the function that gives the connection back (to the pool when ok, else
// dropped). A connection found broken while opening is replaced once, as
// do() does; a server's refusal is returned as is.
func lend[R any](ctx context.Context, s *session, open func(c *conn) (R, error), lent func(R, func(ok bool))) (R, error) {
	var zero R
	for attempt := 0; ; attempt++ {
		c, fresh, err := s.pool.acquire(ctx, s.key, s.password, borrowNever)
		if err != nil {
			return zero, err
		}
		stop := context.AfterFunc(ctx, func() { c.close() })
		r, err := open(c)
		if err == nil {
			lent(r, func(ok bool) {
				stop()
				s.pool.release(c, ok && !c.isClosed())
			})
			return r, nil
		}
		stop()
		broken := c.broken(err)
		s.pool.release(c, !broken)
		switch {
		case !broken, errors.Is(err, errServer):
			return zero, err
		case !fresh && attempt == 0 && ctx.Err() == nil:
			continue
		}
		return zero, fmt.Errorf("%w: %w", backend.ErrUnavailable, err)
	}
}

// StoreFlags implements backend.Session: UID STORE +FLAGS.SILENT and
// -FLAGS.SILENT, then UID FETCH FLAGS for the result (a STORE on a
// missing UID is no error in IMAP).
func (s *session) StoreFlags(ctx context.Context, id backend.FolderID, uid backend.UID, add, remove []string) ([]string, error) {
	if uid == 0 {
		return nil, fmt.Errorf("%w: UID 0", backend.ErrMessageNotFound)
	}
	var flags []string
	err := s.do(ctx, func(c *conn) error {
		if _, _, err := selectFolder(c, id); err != nil {
			return err
		}
		set := imap.UIDSetNum(imap.UID(uid))
		for _, st := range []struct {
			op    imap.StoreFlagsOp
			flags []string
		}{{imap.StoreFlagsAdd, add}, {imap.StoreFlagsDel, remove}} {
			if len(st.flags) == 0 {
				continue
			}
			f := make([]imap.Flag, len(st.flags))
			for i, fl := range st.flags {
				f[i] = imap.Flag(backend.CanonicalFlag(fl))
			}
			c.mutated = true
			if err := c.client.Store(set, &imap.StoreFlags{Op: st.op, Silent: true, Flags: f}, nil).Close(); err != nil {
				return fmt.Errorf("UID STORE: %w", err)
			}
		}
		found := false
		err := fetchFlags(c, backend.NewUIDSet(uid), &imap.FetchOptions{UID: true, Flags: true}, func(got backend.UID, f []string) {
			if got == uid {
				found, flags = true, f
			}
		})
		if err != nil {
			return err
		}
		if !found {
			return fmt.Errorf("%w: UID %d", backend.ErrMessageNotFound, uid)
		}
		return nil
	})
	return flags, err
}

// Move implements backend.Session with UID MOVE, reading the new UID from
// COPYUID (UIDPLUS).
func (s *session) Move(ctx context.Context, id backend.FolderID, uid backend.UID, dst backend.FolderID) (backend.UID, error) {
	if uid == 0 {
		return 0, fmt.Errorf("%w: UID 0", backend.ErrMessageNotFound)
	}
	if id == dst {
		return 0, fmt.Errorf("%w: %s", backend.ErrSameFolder, id)
	}
	var newUID backend.UID
	err := s.do(ctx, func(c *conn) error {
		var err error
		newUID, err = move(c, id, uid, dst)
		return err
	})
	return newUID, err
}

func move(c *conn, id backend.FolderID, uid backend.UID, dst backend.FolderID) (backend.UID, error) {
	dstName, dstUV, err := parseFolderID(dst)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", backend.ErrDestNotFound, err)
	}
	st, err := c.client.Status(dstName, &imap.StatusOptions{UIDValidity: true}).Wait()
	if err != nil {
		if isNo(err) {
			return 0, fmt.Errorf("%w: %s: %w", backend.ErrDestNotFound, dstName, err)
		}
		return 0, err
	}
	if st.UIDValidity != dstUV {
		return 0, fmt.Errorf("%w: %s was recreated (UIDVALIDITY %d, ID has %d)", backend.ErrDestNotFound, dstName, st.UIDValidity, dstUV)
	}
	name, _, err := selectFolder(c, id)
	if err != nil {
		return 0, err
	}
	if name == dstName {
		return 0, fmt.Errorf("%w: %s", backend.ErrSameFolder, name)
	}
	// Look first: a MOVE that matches nothing has no COPYUID to tell so,
	// and go-imap's own server even sends a malformed one.
	found, err := uidSearch(c, &imap.SearchCriteria{UID: []imap.UIDSet{imap.UIDSetNum(imap.UID(uid))}})
	if err != nil {
		return 0, err
	}
	if !found.Contains(uid) {
		return 0, fmt.Errorf("%w: UID %d", backend.ErrMessageNotFound, uid)
	}
	c.mutated = true
	data, err := c.client.Move(imap.UIDSetNum(imap.UID(uid)), dstName).Wait()
	if err != nil {
		if hasCode(err, imap.ResponseCodeTryCreate) || hasCode(err, imap.ResponseCodeNonExistent) {
			return 0, fmt.Errorf("%w: %s: %w", backend.ErrDestNotFound, dstName, err)
		}
		return 0, fmt.Errorf("UID MOVE: %w", err)
	}
	src, dstUIDs := fromIMAPUIDs(data.SourceUIDs), fromIMAPUIDs(data.DestUIDs)
	if src.Len() == 0 {
		if c.has(imap.CapUIDPlus) || c.has(imap.CapIMAP4rev2) {
			return 0, fmt.Errorf("%w: UID %d", backend.ErrMessageNotFound, uid)
		}
		return 0, nil // moved; the server does not say where
	}
	if src.Len() != 1 || dstUIDs.Len() != 1 || !src.Contains(uid) {
		return 0, fmt.Errorf("%w: UID MOVE %d: unexpected COPYUID %v %v", errServer, uid, src, dstUIDs)
	}
	return dstUIDs[0].Start, nil
}

// Delete implements backend.Session.
func (s *session) Delete(ctx context.Context, id backend.FolderID, uid backend.UID, toTrash bool) (backend.Deleted, error) {
	if uid == 0 {
		return backend.Deleted{}, fmt.Errorf("%w: UID 0", backend.ErrMessageNotFound)
	}
	var del backend.Deleted
	err := s.do(ctx, func(c *conn) error {
		if toTrash {
			folders, err := listFolders(c)
			if err != nil {
				return err
			}
			for _, f := range folders {
				if f.Role == backend.RoleTrash && f.ID != id {
					newUID, err := move(c, id, uid, f.ID)
					if err != nil {
						return err
					}
					del = backend.Deleted{Trash: f.ID, UID: newUID}
					return nil
				}
			}
		}
		return expungeOne(c, id, uid)
	})
	return del, err
}

// expungeOne marks one message \Deleted and expunges it alone with UID
// EXPUNGE (UIDPLUS), leaving other \Deleted messages alone.
func expungeOne(c *conn, id backend.FolderID, uid backend.UID) error {
	if !c.has(imap.CapUIDPlus) && !c.has(imap.CapIMAP4rev2) {
		return fmt.Errorf("%w: no UIDPLUS, so one message cannot be expunged alone", errServer)
	}
	if _, _, err := selectFolder(c, id); err != nil {
		return err
	}
	set := imap.UIDSetNum(imap.UID(uid))
	c.mutated = true
	if err := c.client.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return fmt.Errorf("UID STORE \\Deleted: %w", err)
	}
	gone, err := c.client.UIDExpunge(set).Collect()
	if err != nil {
		return fmt.Errorf("UID EXPUNGE: %w", err)
	}
	if len(gone) == 0 {
		return fmt.Errorf("%w: UID %d", backend.ErrMessageNotFound, uid)
	}
	return nil
}

// Append implements backend.Session, reading the UID from APPENDUID
// (UIDPLUS). The body is buffered first: IMAP needs its size up front and
// a short body must not leave the connection waiting for bytes.
func (s *session) Append(ctx context.Context, id backend.FolderID, msg backend.AppendMessage) (backend.UID, error) {
	name, uv, err := parseFolderID(id)
	if err != nil {
		return 0, err
	}
	if msg.Size < 0 || msg.Body == nil {
		return 0, errors.New("imapstore: Append needs a body and its size")
	}
	body := make([]byte, msg.Size)
	if _, err := io.ReadFull(msg.Body, body); err != nil {
		return 0, fmt.Errorf("imapstore: reading the message to append: %w", err)
	}
	var extra [1]byte
	if n, _ := msg.Body.Read(extra[:]); n > 0 {
		return 0, fmt.Errorf("imapstore: message longer than its Size %d", msg.Size)
	}
	opts := &imap.AppendOptions{Time: msg.Date}
	if opts.Time.IsZero() {
		opts.Time = time.Now()
	}
	for _, f := range msg.Flags {
		opts.Flags = append(opts.Flags, imap.Flag(backend.CanonicalFlag(f)))
	}
	var newUID backend.UID
	err = s.do(ctx, func(c *conn) error {
		c.mutated = true
		cmd := c.client.Append(name, msg.Size, opts)
		if _, err := io.Copy(cmd, bytes.NewReader(body)); err != nil {
			cmd.Close()
			return fmt.Errorf("APPEND: %w", err)
		}
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("APPEND: %w", err)
		}
		data, err := cmd.Wait()
		if err != nil {
			if hasCode(err, imap.ResponseCodeTryCreate) || hasCode(err, imap.ResponseCodeNonExistent) {
				return fmt.Errorf("%w: %s: %w", backend.ErrFolderNotFound, name, err)
			}
			return fmt.Errorf("APPEND: %w", err)
		}
		if data.UID == 0 {
			return fmt.Errorf("%w: APPEND gave no APPENDUID (no UIDPLUS)", errServer)
		}
		if data.UIDValidity != uv {
			return fmt.Errorf("%w: %s: stored as UID %d under UIDVALIDITY %d, ID has %d", backend.ErrUIDValidityChanged, name, data.UID, data.UIDValidity, uv)
		}
		newUID = backend.UID(data.UID)
		return nil
	})
	return newUID, err
}
