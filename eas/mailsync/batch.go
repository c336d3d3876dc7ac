package mailsync

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/eas/mailitem"
)

// collect asks the store what changed since the snapshot and adds it to
// the due sets: new messages to DueAdded (the snapshot tracks them from
// now on), changes, expunges and messages out of the window to the
// others. A change or expunge of a message still due as an Add is not
// news to the phone: its Add will carry its flags, or it is dropped.
func (e *Engine) collect(ctx context.Context, req *Request, cur *state) (backend.Scan, error) {
	now := e.now()
	cs, err := req.Session.Changes(ctx, req.Folder, cur.Snap, FilterSince(req.Options.FilterType, now))
	if err != nil {
		return 0, err
	}
	cur.Snap = cs.State
	cur.Scanned = now.Unix()
	due := cur.DueAdded
	// Drafts the phone added are tracked, not sent back to it; their
	// flags are read now, as the store tracks new messages without them.
	if own := cs.Added.Intersect(cur.Own); own.Len() > 0 {
		sums, err := req.Session.Summaries(ctx, req.Folder, own)
		if err != nil {
			return 0, err
		}
		for _, sum := range sums {
			cur.Snap.SetFlags(sum.UID, sum.Flags)
		}
	}
	added := cs.Added.Diff(cur.Own)
	cur.Own = nil
	for _, fc := range cs.Changed {
		if !due.Contains(fc.UID) {
			cur.DueChanged.AddUID(fc.UID)
		}
	}
	cur.DueDeleted = cur.DueDeleted.Union(cs.Expunged.Diff(due))
	cur.DueSoft = cur.DueSoft.Union(cs.AgedOut.Diff(due)).Diff(cs.Added)
	cur.DueChanged = cur.DueChanged.Diff(cur.DueDeleted).Diff(cur.DueSoft)
	cur.DueAdded = due.Diff(cs.Expunged).Diff(cs.AgedOut).Union(added)
	cur.Failed = cur.Failed.Intersect(cur.DueAdded)
	return cs.Scan, nil
}

// take removes and returns up to n UIDs from *set, lowest first.
func take(set *backend.UIDSet, n int) backend.UIDSet {
	var out backend.UIDSet
	for uid := range set.All() {
		if n <= 0 {
			break
		}
		out.AddUID(uid)
		n--
	}
	*set = set.Diff(out)
	return out
}

// pick chooses the next batch of at most win items: deletes, soft
// deletes, changes, then, with adds, the due adds newest first (the phone
// shows the newest mail at once), failed items last. What is not chosen
// stays due.
func pick(cur *state, win int, adds bool) batch {
	var b batch
	n := win
	b.Deleted = take(&cur.DueDeleted, n)
	n -= b.Deleted.Len()
	b.Soft = take(&cur.DueSoft, n)
	n -= b.Soft.Len()
	b.Changed = take(&cur.DueChanged, n)
	n -= b.Changed.Len()
	more := cur.DueDeleted.Len()+cur.DueSoft.Len()+cur.DueChanged.Len() > 0
	if adds {
		for uid := range cur.DueAdded.Backward() {
			if n <= 0 {
				break
			}
			if !cur.Failed.Contains(uid) {
				b.Added.AddUID(uid)
				n--
			}
		}
		for uid := range cur.Failed.All() {
			if n <= 0 {
				break
			}
			b.Added.AddUID(uid)
			n--
		}
		cur.DueAdded = cur.DueAdded.Diff(b.Added)
		more = more || cur.DueAdded.Diff(cur.Failed).Len() > 0
	}
	b.More = more
	return b
}

// cutBatch shrinks a replayed batch to win items, putting the rest back
// among the due changes (a phone that keeps repeating a key gets less
// each time).
func (e *Engine) cutBatch(cur *state, b *batch, win int) {
	if b.size() <= win {
		return
	}
	n := win
	keep := func(set *backend.UIDSet, due *backend.UIDSet) {
		kept := take(set, n)
		n -= kept.Len()
		*due = due.Union(*set)
		*set = kept
	}
	keep(&b.Deleted, &cur.DueDeleted)
	keep(&b.Soft, &cur.DueSoft)
	keep(&b.Changed, &cur.DueChanged)
	var added backend.UIDSet
	for uid := range b.Added.Backward() {
		if n <= 0 {
			break
		}
		added.AddUID(uid)
		n--
	}
	cur.DueAdded = cur.DueAdded.Union(b.Added.Diff(added))
	b.Added = added
	b.More = true
}

// build turns the batch into the result's items, adjusting the state to
// what was really sent: adds that vanished are forgotten, adds that
// failed or came after the deadline are due again. ahead, if not nil, is
// the round's read-ahead plan (planAhead).
func (e *Engine) build(ctx context.Context, req *Request, cur *state, b *batch, res *Result, ahead *aheadPlan) error {
	for uid := range b.Deleted.All() {
		res.Deletes = append(res.Deletes, ServerID(req.Collection, uid))
	}
	for uid := range b.Soft.All() {
		res.SoftDeletes = append(res.SoftDeletes, ServerID(req.Collection, uid))
	}
	var untracked backend.UIDSet
	for uid := range b.Changed.All() {
		if cur.Snap == nil || !cur.Snap.UIDs.Contains(uid) {
			untracked.AddUID(uid)
			continue
		}
		res.Changes = append(res.Changes, Item{ServerID: ServerID(req.Collection, uid), Data: mailitem.ChangeData(cur.Snap.FlagsOf(uid), req.Options.Item)})
	}
	b.Changed = b.Changed.Diff(untracked)
	if b.Added.Len() == 0 {
		if ahead != nil {
			e.dropAhead(ahead.use)
		}
		return nil
	}
	jobs := make([]*job, 0, b.Added.Len())
	for uid := range b.Added.Backward() {
		jobs = append(jobs, &job{uid: uid})
	}
	if err := e.buildJobs(ctx, req, jobs, ahead); err != nil {
		return err
	}
	var sent, unsent backend.UIDSet
	res.Adds = slices.Grow(res.Adds, len(jobs))
	for _, j := range jobs {
		uid := j.uid
		if j.sum == nil {
			// Expunged since: the phone never hears of it.
			if cur.Snap != nil {
				cur.Snap.Remove(uid)
			}
			cur.Failed.RemoveUID(uid)
			continue
		}
		if j.late {
			unsent.AddUID(uid)
			continue
		}
		if err := j.err; err != nil {
			if ctx.Err() != nil || errors.Is(err, backend.ErrUnavailable) {
				return err
			}
			e.buildFailures.Add(1)
			e.log().Warn("sync: item not built", "user", req.User, "device", req.Device,
				"collection", req.Collection, "uid", uint32(uid), "err", err)
			cur.Failed.AddUID(uid)
			unsent.AddUID(uid)
			continue
		}
		it := j.item
		if len(it.Warnings) > 0 {
			e.log().Debug("sync: item built with warnings", "user", req.User, "device", req.Device,
				"collection", req.Collection, "uid", uint32(uid), "warnings", strings.Join(it.Warnings, "; "))
		}
		cur.Failed.RemoveUID(uid)
		if cur.Snap != nil {
			cur.Snap.SetFlags(uid, j.sum.Flags)
		}
		sent.AddUID(uid)
		res.Adds = append(res.Adds, Item{ServerID: ServerID(req.Collection, uid), Data: it.ApplicationData})
	}
	cur.DueAdded = cur.DueAdded.Union(unsent)
	if unsent.Diff(cur.Failed).Len() > 0 {
		b.More = true
	}
	b.Added = sent
	return nil
}

// job is one Add to build.
type job struct {
	uid  backend.UID
	sum  *backend.Summary // nil until read; still nil when gone
	root *mailitem.Part   // the structure, converted when planned

	// whole is the message when the first read brought all of it.
	whole []byte
	// read is what the second read asks for (see plan); got is what it
	// brought, nil when nothing. delivered is the reader's own mark.
	read      backend.ContentRequest
	got       *backend.Contents
	delivered bool

	item *mailitem.Item
	err  error
	late bool
}

// WholeMessageMax is the size up to which a message is read whole and
// converted in memory; larger ones are read part by part (header, then
// only the body text the options need, as mailitem.PlanReads says).
const WholeMessageMax = 32 << 10

// PrefetchMax is the largest part (or cut of the whole message) read
// ahead for a window; larger reads are left to the per-message path when
// the item is built, so a window of large messages is never held in
// memory at once.
const PrefetchMax = 256 << 10

// firstChunk is how many of a window's newest messages the first read
// asks for in a request of their own; the rest of the window follows in
// one more request, pipelined behind it. So the newest items are built
// first (and make it into a response that its deadline or size budget
// cuts short) while the older ones are still on the wire, and a window
// costs the server two FETCH commands, not one per small chunk: each
// command costs Dovecot ~0.4 ms beyond its messages, and reading windows
// in chunks of 128 made an initial sync of 2,000 messages ~8 % slower
// (docs/benchmarks.md, "Initial sync, fourth pass").
const firstChunk = 64

// plannedChunk is how many large messages one request of the planned
// read (buildJobs' third) covers at most, newest first: their parts are
// up to PrefetchMax bytes each, so a command's own cost does not matter
// there, but a deadline can pass while they stream.
const plannedChunk = 128

// buildJobs reads and builds the items in batched reads
// (Session.Contents). The first brings every message's flags, date and
// size and, up to WholeMessageMax bytes, the message itself: small
// messages are whole and built from memory at once, their MIME structure
// found in them. For the larger ones a second read brings their structure
// (BODYSTRUCTURE) and a third what mailitem.PlanReads says their items
// need (header and text parts, or the start of the MIME message), one
// request per shape. Both read the newest first (firstChunk,
// plannedChunk); up to Parallel workers build each item as soon as its
// contents arrive, and none is started once the deadline has passed. Jobs
// the first read did not find are left without a summary (gone since).
//
// With a read-ahead plan, the first read takes what the round before read
// ahead (rechecked: see readahead.go) and asks IMAP only for the rest;
// once it is done, the plan's next window is read ahead.
func (e *Engine) buildJobs(ctx context.Context, req *Request, jobs []*job, ahead *aheadPlan) error {
	opts := req.Options.Item
	byUID := make(map[backend.UID]*job, len(jobs))
	for _, j := range jobs {
		byUID[j.uid] = j
	}

	// Messages are admitted as their summaries arrive, in the order
	// they are read (newest chunk first), so a large message is weighed
	// before the small ones read after it, and one left out is not read
	// further.
	admit := e.responseBudget(opts)
	ready := make(chan *job, len(jobs))
	var firstErr, secondErr error
	var reader sync.WaitGroup
	reader.Go(func() {
		defer close(ready)
		var large []*job
		got := func(c backend.Contents) {
			j := byUID[c.UID]
			if j == nil || j.sum != nil || c.Summary == nil {
				backend.ReleaseBytes(c.Whole)
				return
			}
			j.sum = c.Summary
			if !admit(j.sum.Size) {
				// The response is full (Engine.MaxResponseBytes): the
				// message stays due, and nothing more of it is read.
				j.late = true
				backend.ReleaseBytes(c.Whole)
				return
			}
			if int64(len(c.Whole)) <= WholeMessageMax {
				j.whole = c.Whole
				ready <- j
			} else {
				backend.ReleaseBytes(c.Whole)
				large = append(large, j)
			}
		}
		var gone backend.UIDSet // expunged since the read ahead
		if ahead != nil && ahead.use != nil {
			// What was read ahead is sent only if it is still there,
			// with its flags of now (readahead.go); the rest is read
			// now.
			var asked backend.UIDSet
			for _, j := range jobs {
				asked.AddUID(j.uid)
			}
			live, flags, err := req.Session.Recheck(ctx, req.Folder, asked, ahead.use.modSeq)
			if err != nil {
				e.dropAhead(ahead.use)
				firstErr = err
				return
			}
			gone = asked.Diff(live)
			now := make(map[backend.UID][]string, len(flags))
			for _, fc := range flags {
				now[fc.UID] = fc.Flags
			}
			if firstErr = e.useAhead(ctx, ahead.use, func(c backend.Contents) {
				if gone.Contains(c.UID) {
					backend.ReleaseBytes(c.Whole)
					return
				}
				if j := byUID[c.UID]; j != nil && j.sum == nil && c.Summary != nil {
					e.ahead.used.Add(1)
					if f, ok := now[c.UID]; ok {
						c.Summary.Flags = f
					}
				}
				got(c)
			}); firstErr != nil {
				return
			}
		}
		var rest backend.UIDSet
		for _, j := range jobs {
			if j.sum == nil && !gone.Contains(j.uid) {
				rest.AddUID(j.uid)
			}
		}
		if rest.Len() > 0 {
			firstErr = req.Session.Contents(ctx, req.Folder, firstReads(rest), func(c backend.Contents) error {
				got(c)
				return nil
			})
		}
		if firstErr == nil && ahead != nil {
			// This round's messages are read: the server may go on
			// with the next round's while they are built.
			e.startAhead(req, ahead)
		}
		if firstErr != nil || len(large) == 0 {
			return
		}
		if firstErr = readStructures(ctx, req, large); firstErr != nil {
			return
		}
		large = slices.DeleteFunc(large, func(j *job) bool { return j.sum == nil })
		secondErr = e.readPlanned(ctx, req, opts, large, ready)
	})

	workers := e.Parallel
	if workers <= 0 {
		workers = DefaultParallel
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for j := range ready {
				if !req.Deadline.IsZero() && !e.now().Before(req.Deadline) {
					j.late = true
				} else {
					j.item, j.err = e.buildJob(ctx, req, j)
				}
				// The raw bytes are not needed any more: the item
				// holds copies of what it keeps (mailitem.Build).
				backend.ReleaseBytes(j.whole)
				j.whole, j.got = nil, nil
			}
		})
	}
	reader.Wait()
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	if secondErr != nil {
		if ctx.Err() != nil || errors.Is(secondErr, backend.ErrUnavailable) {
			return secondErr
		}
		e.log().Warn("sync: batched read failed, read message by message", "user", req.User, "device", req.Device,
			"collection", req.Collection, "err", secondErr)
	}
	return nil
}

// responseBudget returns the admission of items into one response under
// Engine.MaxResponseBytes: admit(size) reports whether an item of a
// message of size bytes, built with opts, may still be read and built.
// Safe for concurrent use.
func (e *Engine) responseBudget(opts mailitem.Options) (admit func(size int64) bool) {
	limit := e.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	bound := opts.BodyLimit()
	var (
		mu       sync.Mutex
		used     int64
		admitted bool
	)
	return func(size int64) bool {
		if bound > 0 {
			size = min(size, bound)
		}
		mu.Lock()
		defer mu.Unlock()
		if admitted && used+size > limit {
			return false
		}
		used += size
		admitted = true
		return true
	}
}

// readStructures reads the summaries of the large messages again, with
// their MIME structure this time (the first read leaves it out: small
// messages are read whole and their structure is found in them). A
// message gone since is left without a summary.
func readStructures(ctx context.Context, req *Request, jobs []*job) error {
	byUID := make(map[backend.UID]*job, len(jobs))
	r := backend.ContentRequest{Summary: true}
	for _, j := range jobs {
		byUID[j.uid] = j
		r.UIDs.AddUID(j.uid)
		j.sum = nil
	}
	return req.Session.Contents(ctx, req.Folder, []backend.ContentRequest{r}, func(c backend.Contents) error {
		if j := byUID[c.UID]; j != nil && c.Summary != nil {
			j.sum = c.Summary
		}
		return nil
	})
}

// readPlanned reads what the items of the large messages need (the
// second read of buildJobs) and hands each job to ready when its contents
// are in; jobs the read did not bring (nothing to read ahead, gone since,
// or the read failed) are handed over too, to be read message by
// message.
func (e *Engine) readPlanned(ctx context.Context, req *Request, opts mailitem.Options, jobs []*job, ready chan<- *job) error {
	type shape struct {
		req, jobs int // the request's index, jobs in it so far
	}
	var reqs []backend.ContentRequest
	shapes := make(map[string]*shape)
	byUID := make(map[backend.UID]*job, len(jobs))
	for _, j := range jobs {
		key := plan(j, opts)
		if key == "" {
			j.delivered = true
			ready <- j
			continue
		}
		byUID[j.uid] = j
		sh := shapes[key]
		if sh == nil || sh.jobs == plannedChunk {
			sh = &shape{req: len(reqs)}
			shapes[key] = sh
			reqs = append(reqs, j.read)
		}
		reqs[sh.req].UIDs.AddUID(j.uid)
		sh.jobs++
	}
	var err error
	if len(reqs) > 0 {
		err = req.Session.Contents(ctx, req.Folder, reqs, func(c backend.Contents) error {
			j := byUID[c.UID]
			if j == nil || j.delivered {
				return nil
			}
			j.got, j.delivered = &c, true
			ready <- j
			return nil
		})
	}
	for _, j := range jobs {
		if !j.delivered {
			j.delivered = true
			ready <- j
		}
	}
	return err
}

// plan sets what the batched read fetches for j (j.read) and returns a
// key naming its shape, "" when nothing is read ahead.
func plan(j *job, opts mailitem.Options) string {
	if j.sum.Size > 0 && j.sum.Size <= WholeMessageMax {
		j.read = backend.ContentRequest{Whole: true}
		return "whole"
	}
	j.root = structure(j.sum)
	p := mailitem.PlanReads(j.root, opts)
	var key strings.Builder
	if p.Header {
		j.read.Header = true
		key.WriteString("header")
	}
	for _, ps := range p.Sections {
		part := findPart(j.root, ps.Path)
		if part == nil || len(ps.Path) == 0 {
			continue
		}
		want := part.Size
		if ps.MaxBytes > 0 && (want <= 0 || ps.MaxBytes < want) {
			want = ps.MaxBytes
		}
		if want > PrefetchMax {
			continue
		}
		limit := int64(0)
		if ps.MaxBytes > 0 {
			limit = ps.MaxBytes + 1 // one more byte tells whether there is more
		}
		path := mailitem.PathString(ps.Path)
		j.read.Sections = append(j.read.Sections, backend.SectionRequest{Part: path, Limit: limit})
		key.WriteString(" " + path + "<" + strconv.FormatInt(limit, 10) + ">")
	}
	if p.Full && p.FullMax > 0 && p.FullMax <= PrefetchMax {
		j.read.Whole, j.read.WholeLimit = true, p.FullMax+1
		key.WriteString(" full<" + strconv.FormatInt(j.read.WholeLimit, 10) + ">")
	}
	return key.String()
}

// findPart returns the part at path under root, or nil.
func findPart(root *mailitem.Part, path []int) *mailitem.Part {
	if slices.Equal(root.Path, path) {
		return root
	}
	for _, c := range root.Children {
		if p := findPart(c, path); p != nil {
			return p
		}
	}
	return nil
}

// buildItem converts one message for a Fetch, reading it message by
// message.
func (e *Engine) buildItem(ctx context.Context, req *Request, sum *backend.Summary) (*mailitem.Item, error) {
	return e.buildJob(ctx, req, &job{uid: sum.UID, sum: sum})
}

// buildJob converts one message for a Sync Add or Fetch from what the
// batched reads brought, reading the rest message by message.
func (e *Engine) buildJob(ctx context.Context, req *Request, j *job) (_ *mailitem.Item, err error) {
	// Items are built on goroutines of the engine's own, where a panic
	// would end the whole gateway: a message that makes the converter
	// panic fails like one it cannot convert (logged, counted, retried
	// last), and the stack goes to the log.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errBuildPanic, p)
			e.log().Error("sync: building an item panicked", "user", req.User, "device", req.Device,
				"collection", req.Collection, "uid", uint32(j.uid), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()
	sum := j.sum
	opts := req.Options.Item
	if ref := req.Options.FileRef; ref != nil {
		uid := sum.UID
		opts.FileRef = func(path []int) string { return ref(uid, path) }
	}
	meta := mailitem.Meta{UID: uint32(sum.UID), Flags: sum.Flags, InternalDate: sum.Received, Size: sum.Size}
	src := &source{sess: req.Session, folder: req.Folder, sum: sum, root: j.root}
	raw := j.whole
	if raw == nil && j.got == nil && sum.Size > 0 && sum.Size <= WholeMessageMax {
		rc, err := req.Session.Message(ctx, req.Folder, sum.UID)
		if err != nil {
			return nil, &mailitem.SourceError{Op: "full", Err: err}
		}
		raw, err = io.ReadAll(io.LimitReader(rc, WholeMessageMax+1))
		rc.Close()
		if err != nil {
			return nil, &mailitem.SourceError{Op: "full", Err: err}
		}
		if int64(len(raw)) > WholeMessageMax {
			raw = nil
		}
	}
	switch {
	case raw != nil:
		return mailitem.Build(ctx, mailitem.FromBytes(raw, meta), opts)
	case j.got == nil:
		return mailitem.Build(ctx, src, opts)
	}
	got := j.got
	pre := &prefetched{source: src, header: got.Header, sections: make(map[string]fetched, len(got.Sections))}
	for i, data := range got.Sections {
		if i < len(j.read.Sections) {
			pre.sections[j.read.Sections[i].Part] = fetched{data: data, limit: j.read.Sections[i].Limit}
		}
	}
	if got.Whole != nil {
		pre.full = &fetched{data: got.Whole, limit: j.read.WholeLimit}
	}
	return mailitem.Build(ctx, pre, opts)
}

// errBuildPanic is the error of an item whose building panicked.
var errBuildPanic = errors.New("mailsync: building the item panicked")

// bookkeeping are keywords that are not categories (as eas/mailitem
// leaves them out of Categories), in lower case.
var bookkeeping = []string{"$forwarded", "$mdnsent", "$junk", "$notjunk", "junk", "notjunk", "nonjunk", "$phishing"}

func isCategory(flag string) bool {
	return !strings.HasPrefix(flag, `\`) && !slices.Contains(bookkeeping, strings.ToLower(flag))
}

// keywordOK reports whether a category can be an IMAP keyword (an atom,
// RFC 9051 9: no space, controls or list, quote and wildcard characters,
// and no backslash or "]"). Others have no IMAP form and are left alone.
func keywordOK(k string) bool {
	if k == "" || !isCategory(k) {
		return false
	}
	for _, r := range k {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`(){%*"\]`, r) {
			return false
		}
	}
	return true
}

// runCommand runs one client command against the store and returns its
// answer and its effect on the state (so the change is not echoed back).
// server holds the messages' current flags when the server wins
// conflicts (nil when the client wins).
func (e *Engine) runCommand(ctx context.Context, req *Request, cur *state, c Command, server map[backend.UID][]string) (Response, func(*state), error) {
	r := Response{Kind: c.Kind, ServerID: c.ServerID, ClientID: c.ClientID}
	if c.Kind == CmdAdd {
		return e.addDraft(ctx, req, cur, c)
	}
	uid := ParseServerID(req.Collection, c.ServerID)
	if uid == 0 {
		r.Status = StatusObjectNotFound
		return r, nil, nil
	}
	switch c.Kind {
	case CmdChange:
		if c.EditsContent {
			r.Status = StatusConversionError
			return r, nil, nil
		}
		if server != nil && conflicts(cur, uid, server) {
			r.Status = StatusConflict
			return r, nil, nil
		}
		var add, remove []string
		if c.Read != nil {
			if *c.Read {
				add = append(add, backend.FlagSeen)
			} else {
				remove = append(remove, backend.FlagSeen)
			}
		}
		if c.Flag != nil {
			// MS-ASEMAIL 2.2.2.74: 2 active; 1 complete and 0 cleared
			// have no IMAP form but an unset \Flagged (digest §4.2).
			if *c.Flag == "2" {
				add = append(add, backend.FlagFlagged)
			} else {
				remove = append(remove, backend.FlagFlagged)
			}
		}
		if c.Categories != nil {
			// email:Categories (MS-ASEMAIL 2.2.2.10) is the whole
			// list: keywords not in it are removed.
			if cur.Snap != nil {
				for _, f := range cur.Snap.FlagsOf(uid) {
					if isCategory(f) && !slices.ContainsFunc(c.Categories, func(c string) bool { return strings.EqualFold(c, f) }) {
						remove = append(remove, f)
					}
				}
			}
			for _, cat := range c.Categories {
				if keywordOK(cat) {
					add = append(add, cat)
				}
			}
		}
		if len(add)+len(remove) > 0 {
			after, err := req.Session.StoreFlags(ctx, req.Folder, uid, add, remove)
			if err != nil {
				if errors.Is(err, backend.ErrMessageNotFound) {
					r.Status = StatusObjectNotFound
					return r, nil, nil
				}
				return r, nil, err
			}
			// Record the flags set as the server spells them
			// (servers may fold keywords' case).
			for i, f := range add {
				if j := slices.IndexFunc(after, func(a string) bool { return strings.EqualFold(a, f) }); j >= 0 {
					add[i] = after[j]
				}
			}
		}
		r.Status = StatusSuccess
		return r, func(st *state) {
			// The snapshot gets only the client's own change; anything
			// else that changed on the server is still reported.
			if st.Snap == nil || !st.Snap.UIDs.Contains(uid) {
				return
			}
			flags := slices.DeleteFunc(st.Snap.FlagsOf(uid), func(f string) bool {
				return slices.ContainsFunc(remove, func(x string) bool { return strings.EqualFold(f, x) })
			})
			st.Snap.SetFlags(uid, append(flags, add...))
		}, nil
	case CmdDelete:
		if _, err := req.Session.Delete(ctx, req.Folder, uid, req.Options.DeletesAsMoves); err != nil {
			if errors.Is(err, backend.ErrMessageNotFound) {
				// Gone already: Status 8 (the digest §6.12), and the
				// message stays tracked, so the scan sends its Delete
				// too — a phone that keeps an item whose Delete failed
				// loses it then, one that did not ignores it.
				r.Status = StatusObjectNotFound
				return r, nil, nil
			}
			return r, nil, err
		}
		r.Status = StatusSuccess
		return r, func(st *state) { st.forget(uid) }, nil
	}
	r.Status = StatusProtocolError
	return r, nil, nil
}

// fetch answers a client Fetch with the whole item (Responses > Fetch).
func (e *Engine) fetch(ctx context.Context, req *Request, c Command) Response {
	r := Response{Kind: CmdFetch, ServerID: c.ServerID, Status: StatusObjectNotFound}
	uid := ParseServerID(req.Collection, c.ServerID)
	if uid == 0 {
		return r
	}
	sums, err := req.Session.Summaries(ctx, req.Folder, backend.NewUIDSet(uid))
	if err != nil || len(sums) == 0 {
		if err != nil && !errors.Is(err, backend.ErrMessageNotFound) {
			r.Status = StatusServerError
		}
		return r
	}
	it, err := e.buildItem(ctx, req, &sums[0])
	if err != nil {
		e.buildFailures.Add(1)
		e.log().Warn("sync: fetched item not built", "user", req.User, "device", req.Device,
			"collection", req.Collection, "uid", uint32(uid), "err", err)
		r.Status = StatusServerError
		return r
	}
	r.Status = StatusSuccess
	r.Data = it.ApplicationData
	return r
}
