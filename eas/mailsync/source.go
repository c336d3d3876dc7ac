package mailsync

import (
	"context"
	"io"
	"strconv"
	"strings"

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
}

var _ mailitem.Source = (*source)(nil)

func (s *source) Meta() mailitem.Meta {
	return mailitem.Meta{UID: uint32(s.sum.UID), Flags: s.sum.Flags, InternalDate: s.sum.Received, Size: s.sum.Size}
}

func (s *source) Structure(context.Context) (*mailitem.Part, error) {
	if s.sum.Structure == nil {
		return &mailitem.Part{Path: []int{1}, Type: "text", Subtype: "plain"}, nil
	}
	return convertPart(s.sum.Structure), nil
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
