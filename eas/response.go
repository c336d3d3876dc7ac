package eas

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/easgate/easgate/wbxml"
)

// spoolMemory is how much of a streamed response is kept in memory before
// the rest goes to a temporary file.
const spoolMemory = 4 << 20

// spool collects a response body before anything is sent: in memory up to
// spoolMemory bytes, then in a temporary file, which Close removes.
type spool struct {
	buf  bytes.Buffer
	file *os.File
	n    int64
	// onDisk skips the memory stage, for output known to be big: growing
	// buf to spoolMemory first allocates about twice that in all.
	onDisk bool
}

func (s *spool) Write(p []byte) (int, error) {
	if s.file == nil && (s.onDisk || s.buf.Len()+len(p) > spoolMemory) {
		f, err := os.CreateTemp("", "easgate-response-*")
		if err != nil {
			return 0, fmt.Errorf("spooling response: %w", err)
		}
		s.file = f
		if _, err := f.Write(s.buf.Bytes()); err != nil {
			return 0, fmt.Errorf("spooling response: %w", err)
		}
		s.buf = bytes.Buffer{}
	}
	var n int
	var err error
	if s.file != nil {
		n, err = s.file.Write(p)
	} else {
		n, err = s.buf.Write(p)
	}
	s.n += int64(n)
	return n, err
}

// reader returns the spooled bytes from the start.
func (s *spool) reader() (io.Reader, error) {
	if s.file == nil {
		return bytes.NewReader(s.buf.Bytes()), nil
	}
	if _, err := s.file.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return s.file, nil
}

func (s *spool) Close() {
	if s.file != nil {
		s.file.Close()
		os.Remove(s.file.Name())
	}
}

// writeResponse renders a handler's Response completely, then sends it. An
// error while rendering is returned and nothing has been written.
func (s *Server) writeResponse(w http.ResponseWriter, r *http.Request, cmd command, resp Response, rec *logRecord) error {
	ct := resp.ContentType
	if ct == "" {
		ct = ContentTypeWBXML
	}
	body := &spool{}
	defer body.Close()
	switch {
	case resp.Element != nil && resp.Body != nil:
		return errors.New("eas: handler returned both Element and Body")
	case resp.Element != nil:
		b, err := wbxml.Marshal(resp.Element)
		if err != nil {
			return fmt.Errorf("encoding response: %w", err)
		}
		if _, err := body.Write(b); err != nil {
			return err
		}
		rec.status = topStatus(resp.Element, cmd.Status)
	case resp.Body != nil:
		if err := resp.Body(body); err != nil {
			return fmt.Errorf("writing response: %w", err)
		}
		rec.status = resp.Status
	}
	for k, v := range resp.Header {
		w.Header()[k] = v
	}
	src, err := body.reader()
	if err != nil {
		return fmt.Errorf("reading spooled response: %w", err)
	}
	rec.code = http.StatusOK
	s.writeBody(w, r, http.StatusOK, ct, src, body.n)
	return nil
}

// gzipWriters recycles gzip writers: each holds several hundred kilobytes
// of compressor state, which would otherwise be allocated per response.
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(io.Discard) }}

// writeBody sends a complete body with the EAS response headers: an empty
// body as Content-Length 0 and never gzipped (the digest §1.6), a
// non-empty one gzipped when the client accepts it.
func (s *Server) writeBody(w http.ResponseWriter, r *http.Request, code int, contentType string, body io.Reader, n int64) {
	h := w.Header()
	s.commonHeaders(h)
	h.Set("Content-Type", contentType)
	if n > 0 && acceptsGzip(r.Header) {
		h.Set("Vary", "Accept-Encoding")
		// The gzip of a body too big for memory goes to disk at once.
		z := &spool{onDisk: n > spoolMemory}
		defer z.Close()
		zw := gzipWriters.Get().(*gzip.Writer)
		zw.Reset(z)
		_, err := io.Copy(zw, body)
		if err == nil {
			err = zw.Close()
		}
		gzipWriters.Put(zw)
		var zr io.Reader
		if err == nil {
			zr, err = z.reader()
		}
		if err == nil {
			h.Set("Content-Encoding", "gzip")
			h.Set("Content-Length", strconv.FormatInt(z.n, 10))
			w.WriteHeader(code)
			io.Copy(w, zr)
			return
		}
		// Compression failed (the spool's disk is full): send it plain.
		if sk, ok := body.(io.Seeker); ok {
			if _, err := sk.Seek(0, io.SeekStart); err != nil {
				h.Set("Content-Length", "0")
				w.WriteHeader(http.StatusInternalServerError)
				return
			}
		}
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(code)
	if n > 0 {
		io.Copy(w, body)
	}
}

// acceptsGzip reports whether Accept-Encoding allows gzip (RFC 9110
// 12.5.3): listed, or covered by "*", without q=0.
func acceptsGzip(h http.Header) bool {
	ok := false
	for _, v := range h.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name != "gzip" && name != "*" {
				continue
			}
			zero := false
			for p := range strings.SplitSeq(params, ";") {
				k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
				if strings.EqualFold(k, "q") {
					if f, err := strconv.ParseFloat(v, 64); err == nil && f == 0 {
						zero = true
					}
				}
			}
			if name == "gzip" {
				return !zero
			}
			ok = !zero
		}
	}
	return ok
}

// topStatus returns the value of a document's top-level Status for the
// log, 0 when it has none.
func topStatus(e *wbxml.Element, status wbxml.Tag) int {
	if status == 0 {
		return 0
	}
	for _, c := range e.Children {
		if c.Tag == status {
			n, _ := strconv.Atoi(c.Text)
			return n
		}
	}
	return 0
}
