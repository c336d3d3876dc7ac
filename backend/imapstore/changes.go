package imapstore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/easgate/easgate/backend"
)

// windowDay is the day IMAP SINCE compares with: window's UTC date at
// midnight, or zero for no window.
func windowDay(window time.Time) time.Time {
	if window.IsZero() {
		return time.Time{}
	}
	y, m, d := window.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Changes implements backend.Session.
//
// With CONDSTORE and a snapshot, one STATUS first compares the change
// marks (HIGHESTMODSEQ, UIDNEXT, MESSAGES); if none moved, nothing more is
// sent (ScanSkipped). Otherwise the folder is selected, UID SEARCH ALL and
// UID SEARCH SINCE find expunged, aged-out and added messages, and the
// tracked messages' flags are fetched: only those changed since the
// snapshot's mod-sequence with CONDSTORE (ScanModSeq), all of them
// without (ScanFull). Added messages' flags are not fetched. QRESYNC is
// never used (go-imap cannot parse VANISHED).
func (s *session) Changes(ctx context.Context, id backend.FolderID, since *backend.FolderState, window time.Time) (*backend.ChangeSet, error) {
	var cs *backend.ChangeSet
	err := s.do(ctx, func(c *conn) error {
		var err error
		cs, err = changes(c, id, since, windowDay(window))
		return err
	})
	return cs, err
}

func changes(c *conn, id backend.FolderID, since *backend.FolderState, day time.Time) (*backend.ChangeSet, error) {
	name, uv, err := parseFolderID(id)
	if err != nil {
		return nil, err
	}
	if since != nil && since.UIDValidity != uv {
		return nil, fmt.Errorf("%w: %s: state has UIDVALIDITY %d, ID has %d", backend.ErrUIDValidityChanged, name, since.UIDValidity, uv)
	}
	if since != nil && c.condStore() && since.HighestModSeq != 0 && since.Pending.Len() == 0 && since.Window.Equal(day) {
		// STATUS of the selected mailbox answers from this session's
		// view, which Dovecot has not refreshed: unselect it first.
		if err := unselect(c); err != nil {
			return nil, err
		}
		st, err := c.client.Status(name, statusItems(c)).Wait()
		if err != nil {
			if isNo(err) {
				return nil, fmt.Errorf("%w: %s: %w", backend.ErrFolderNotFound, name, err)
			}
			return nil, err
		}
		if st.UIDValidity != uv {
			return nil, fmt.Errorf("%w: %s: UIDVALIDITY %d, ID has %d", backend.ErrUIDValidityChanged, name, st.UIDValidity, uv)
		}
		if st.HighestModSeq == since.HighestModSeq && backend.UID(st.UIDNext) == since.UIDNext &&
			st.NumMessages != nil && *st.NumMessages == since.Messages {
			return &backend.ChangeSet{State: since.Clone(), Scan: backend.ScanSkipped}, nil
		}
	}

	_, sel, err := openFolder(c, id, true)
	if err != nil {
		return nil, err
	}
	all, err := uidSearch(c, &imap.SearchCriteria{})
	if err != nil {
		return nil, err
	}
	inWindow := all
	if !day.IsZero() {
		if inWindow, err = uidSearch(c, &imap.SearchCriteria{Since: day}); err != nil {
			return nil, err
		}
		inWindow = inWindow.Intersect(all)
	}

	state := &backend.FolderState{}
	var tracked backend.UIDSet
	if since != nil {
		state = since.Clone()
		tracked = since.UIDs
	}
	cs := &backend.ChangeSet{
		Expunged: tracked.Diff(all),
		AgedOut:  tracked.Intersect(all).Diff(inWindow),
		Scan:     backend.ScanFull,
	}
	kept := tracked.Intersect(inWindow)
	state.Untrack(tracked.Diff(kept))
	state.Pending = nil
	state.UIDValidity = sel.UIDValidity
	state.UIDNext = backend.UID(sel.UIDNext)
	state.Messages = sel.NumMessages
	state.HighestModSeq = 0
	if c.condStore() {
		state.HighestModSeq = sel.HighestModSeq
	}
	state.Window = day

	useModSeq := since != nil && since.HighestModSeq != 0 && state.HighestModSeq != 0
	if useModSeq {
		cs.Scan = backend.ScanModSeq
	}
	if kept.Len() > 0 && (!useModSeq || state.HighestModSeq != since.HighestModSeq) {
		opts := &imap.FetchOptions{UID: true, Flags: true}
		if useModSeq {
			opts.ChangedSince = since.HighestModSeq
		}
		err := fetchFlags(c, kept, opts, func(uid backend.UID, flags []string) {
			if !slices.Equal(flags, state.FlagsOf(uid)) {
				cs.Changed = append(cs.Changed, backend.FlagChange{UID: uid, Flags: flags})
				state.SetFlags(uid, flags)
			}
		})
		if err != nil {
			return nil, err
		}
		sort.Slice(cs.Changed, func(i, j int) bool { return cs.Changed[i].UID < cs.Changed[j].UID })
	}
	if added := inWindow.Diff(tracked); added.Len() > 0 {
		// Tracked without flags (backend.ChangeSet.Added): the caller
		// reads them with the messages. A FETCH FLAGS of every new
		// message was most of the first snapshot's cost.
		cs.Added = added
		state.UIDs = state.UIDs.Union(added)
	}
	cs.State = state
	return cs, nil
}

// Search implements backend.Session with UID SEARCH [SINCE day].
func (s *session) Search(ctx context.Context, id backend.FolderID, window time.Time) (backend.UIDSet, error) {
	var uids backend.UIDSet
	err := s.do(ctx, func(c *conn) error {
		if err := examineFolder(c, id); err != nil {
			return err
		}
		var err error
		uids, err = uidSearch(c, &imap.SearchCriteria{Since: windowDay(window)})
		return err
	})
	return uids, err
}

// Recheck implements backend.Session on a selection brought up to date
// (examineFolder): with CONDSTORE and since, UID SEARCH UID uids and
// UID FETCH uids (FLAGS) (CHANGEDSINCE since), pipelined, whose answers
// are small; otherwise UID FETCH uids (FLAGS), which answers both
// questions.
func (s *session) Recheck(ctx context.Context, id backend.FolderID, uids backend.UIDSet, since uint64) (backend.UIDSet, []backend.FlagChange, error) {
	if uids.Len() == 0 {
		return nil, nil, nil
	}
	var (
		live    backend.UIDSet
		changed []backend.FlagChange
	)
	err := s.do(ctx, func(c *conn) error {
		live, changed = nil, nil
		if err := examineFolder(c, id); err != nil {
			return err
		}
		opts := &imap.FetchOptions{UID: true, Flags: true}
		all := !c.condStore() || since == 0
		var search func() (backend.UIDSet, error)
		if !all {
			search = startUIDSearch(c, &imap.SearchCriteria{UID: []imap.UIDSet{toIMAPUIDs(uids)}})
			opts.ChangedSince = since
		}
		err := fetchFlags(c, uids, opts, func(uid backend.UID, flags []string) {
			if all {
				live.AddUID(uid)
			}
			changed = append(changed, backend.FlagChange{UID: uid, Flags: flags})
		})
		if search != nil {
			var serr error
			live, serr = search()
			err = cmp.Or(err, serr)
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return live.Intersect(uids), changed, nil
}

// uidSearch runs UID SEARCH, as RETURN (ALL) (compact ranges, RFC 4731)
// where the server has ESEARCH.
func uidSearch(c *conn, criteria *imap.SearchCriteria) (backend.UIDSet, error) {
	return startUIDSearch(c, criteria)()
}

// startUIDSearch sends the UID SEARCH of uidSearch and returns the wait
// for its answer, so that other commands may follow it on the wire.
func startUIDSearch(c *conn, criteria *imap.SearchCriteria) func() (backend.UIDSet, error) {
	var opts *imap.SearchOptions
	if c.has(imap.CapESearch) || c.has(imap.CapIMAP4rev2) {
		opts = &imap.SearchOptions{ReturnAll: true}
	}
	cmd := c.client.UIDSearch(criteria, opts)
	return func() (backend.UIDSet, error) {
		data, err := cmd.Wait()
		if err != nil {
			return nil, fmt.Errorf("UID SEARCH: %w", err)
		}
		return fromIMAPUIDs(data.All), nil
	}
}

// fetchFlags runs UID FETCH uids (UID FLAGS) with opts and calls f with
// each message's normalised flags, consuming the whole response.
func fetchFlags(c *conn, uids backend.UIDSet, opts *imap.FetchOptions, f func(backend.UID, []string)) error {
	cmd := c.client.Fetch(toIMAPUIDs(uids), opts)
	defer cmd.Close()
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		buf, err := msg.Collect()
		if err != nil {
			return fmt.Errorf("UID FETCH FLAGS: %w", err)
		}
		if buf.UID == 0 {
			continue // an unsolicited FETCH (Dovecot sends them without UID)
		}
		f(backend.UID(buf.UID), normalizeFlags(buf.Flags))
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("UID FETCH FLAGS: %w", err)
	}
	return nil
}

func normalizeFlags(flags []imap.Flag) []string {
	out := make([]string, len(flags))
	for i, f := range flags {
		out[i] = string(f)
	}
	return backend.NormalizeFlags(out)
}
