package mailsync

import (
	"bytes"
	"context"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/easgate/easgate/backend"
	"github.com/easgate/easgate/eas/mailitem"
)

// source is the mailitem.Source of one message in a backend.Session: the
// summary answers Meta and Structure, each other read is one Section or
// Message call.
type source struct {
	sess   backend.Session
	folder backend.FolderID
	sum    *backend.Summary
	root   *mailitem.Part // the converted structure, nil until needed
}

var _ mailitem.Source = (*source)(nil)

// NewSource returns the mailitem.Source of the message sum describes,
// read through sess: the summary answers Meta and Structure, the header
// and each text part the body needs are one Section each, and only a MIME
// body (Type 4) reads the whole message; attachments are never read.
// ItemOperations Fetch of a whole item builds from it.
func NewSource(sess backend.Session, folder backend.FolderID, sum *backend.Summary) mailitem.Source {
	return &source{sess: sess, folder: folder, sum: sum}
}

func (s *source) Meta() mailitem.Meta {
	return mailitem.Meta{UID: uint32(s.sum.UID), Flags: s.sum.Flags, InternalDate: s.sum.Received, Size: s.sum.Size}
}

func (s *source) Structure(context.Context) (*mailitem.Part, error) {
	if s.root == nil {
		s.root = structure(s.sum)
	}
	return s.root, nil
}

// structure is the message's MIME tree as mailitem has it.
func structure(sum *backend.Summary) *mailitem.Part {
	if sum.Structure == nil {
		return &mailitem.Part{Path: []int{1}, Type: "text", Subtype: "plain"}
	}
	return convertPart(sum.Structure)
}

func (s *source) Header(ctx context.Context) ([]byte, error) {
	b, err := s.sess.Section(ctx, s.folder, s.sum.UID, "HEADER", 0, 0)
	if err != nil {
		return nil, &mailitem.SourceError{Op: "header", Err: err}
	}
	return b, nil
}

func (s *source) Section(ctx context.Context, path []int, maxBytes int64) ([]byte, bool, error) {
	limit := int64(0)
	if maxBytes > 0 {
		limit = maxBytes + 1 // one more byte tells whether there is more
	}
	p := mailitem.PathString(path)
	if p == "" {
		p = "TEXT"
	}
	b, err := s.sess.Section(ctx, s.folder, s.sum.UID, p, 0, limit)
	if err != nil {
		return nil, false, &mailitem.SourceError{Op: "section " + p, Err: err}
	}
	if maxBytes > 0 && int64(len(b)) > maxBytes {
		return b[:maxBytes], true, nil
	}
	return b, false, nil
}

func (s *source) Full(ctx context.Context) (io.ReadCloser, int64, error) {
	rc, err := s.sess.Message(ctx, s.folder, s.sum.UID)
	if err != nil {
		return nil, 0, &mailitem.SourceError{Op: "full", Err: err}
	}
	return rc, s.sum.Size, nil
}

// prefetched is the mailitem.Source of a message whose planned reads
// (mailitem.PlanReads) Session.Contents made for the whole window. Reads
// the prefetched bytes answer are served from memory; any other (a text
// read that grows because the first fell short, a part too large to
// prefetch) falls back to the per-message read.
type prefetched struct {
	*source
	header   []byte // nil: not prefetched
	sections map[string]fetched
	full     *fetched
}

// fetched is a prefetched part: data holds its first limit bytes, or all
// of it when limit <= 0 or the part was shorter.
type fetched struct {
	data  []byte
	limit int64
}

// whole reports whether data is the whole part.
func (f fetched) whole() bool { return f.limit <= 0 || int64(len(f.data)) < f.limit }

func (s *prefetched) Header(ctx context.Context) ([]byte, error) {
	if s.header != nil {
		return s.header, nil
	}
	return s.source.Header(ctx)
}

func (s *prefetched) Section(ctx context.Context, path []int, maxBytes int64) ([]byte, bool, error) {
	if f, ok := s.sections[mailitem.PathString(path)]; ok {
		switch {
		case f.whole():
			if maxBytes > 0 && int64(len(f.data)) > maxBytes {
				return f.data[:maxBytes], true, nil
			}
			return f.data, false, nil
		case maxBytes > 0 && maxBytes < int64(len(f.data)):
			return f.data[:maxBytes], true, nil
		}
	}
	return s.source.Section(ctx, path, maxBytes)
}

func (s *prefetched) Full(ctx context.Context) (io.ReadCloser, int64, error) {
	f := s.full
	if f == nil {
		return s.source.Full(ctx)
	}
	size := max(s.sum.Size, int64(len(f.data)))
	if f.whole() {
		return io.NopCloser(bytes.NewReader(f.data)), size, nil
	}
	// The rest is read only if someone reads that far.
	rest := &lazyReader{open: func() (io.Reader, error) {
		b, err := s.sess.Section(ctx, s.folder, s.sum.UID, "", int64(len(f.data)), 0)
		if err != nil {
			return nil, &mailitem.SourceError{Op: "full", Err: err}
		}
		return bytes.NewReader(b), nil
	}}
	return io.NopCloser(io.MultiReader(bytes.NewReader(f.data), rest)), size, nil
}

// lazyReader opens its reader on the first Read.
type lazyReader struct {
	once sync.Once
	open func() (io.Reader, error)
	r    io.Reader
	err  error
}

func (l *lazyReader) Read(p []byte) (int, error) {
	l.once.Do(func() { l.r, l.err = l.open() })
	if l.err != nil {
		return 0, l.err
	}
	return l.r.Read(p)
}

// convertPart turns the backend's MIME tree into mailitem's.
func convertPart(p *backend.BodyPart) *mailitem.Part {
	out := &mailitem.Part{
		Path:              parsePath(p.Path),
		Type:              p.Type,
		Subtype:           p.Subtype,
		Params:            p.Params,
		ID:                p.ID,
		Description:       p.Description,
		Encoding:          p.Encoding,
		Size:              p.Size,
		Disposition:       p.Disposition,
		DispositionParams: p.DispositionParams,
		Location:          p.Location,
	}
	if p.Type != "multipart" && len(out.Path) == 0 {
		out.Path = []int{1} // the body of a single-part message
	}
	for _, c := range p.Children {
		out.Children = append(out.Children, convertPart(c))
	}
	return out
}

func parsePath(s string) []int {
	if s == "" {
		return nil
	}
	var out []int
	for f := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(f)
		if err != nil {
			return out
		}
		out = append(out, n)
	}
	return out
}
