package mailitem

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/easgate/easgate/wbxml"
)

// clobberSource hands out its Source's bytes through buffers of its own,
// as an IMAP-backed Source hands out pooled fetch buffers, and can
// overwrite all of them afterwards.
type clobberSource struct {
	Source
	handed [][]byte
}

func (s *clobberSource) keep(b []byte) []byte {
	if b == nil {
		return nil
	}
	c := bytes.Clone(b)
	s.handed = append(s.handed, c)
	return c
}

func (s *clobberSource) Header(ctx context.Context) ([]byte, error) {
	b, err := s.Source.Header(ctx)
	return s.keep(b), err
}

func (s *clobberSource) Section(ctx context.Context, path []int, maxBytes int64) ([]byte, bool, error) {
	b, more, err := s.Source.Section(ctx, path, maxBytes)
	return s.keep(b), more, err
}

func (s *clobberSource) Full(ctx context.Context) (io.ReadCloser, int64, error) {
	rc, size, err := s.Source.Full(ctx)
	if err != nil {
		return nil, 0, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, 0, err
	}
	return io.NopCloser(bytes.NewReader(s.keep(b))), size, nil
}

func (s *clobberSource) clobber() {
	for _, b := range s.handed {
		clear(b)
	}
}

// TestItemKeepsNoMessageBytes: what Build and BuildBody return holds
// copies of the message's bytes, never views of them, so that the caller
// may zero and reuse its buffer (backend.ReleaseBytes) at once. The
// texts that are most tempting to share — an identity-encoded UTF-8
// body, a bare address, a single display name, a plain subject — are
// in every message, under every set of options.
func TestItemKeepsNoMessageBytes(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.eml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no test messages: %v", err)
	}
	msgs := [][]byte{
		[]byte("From: a@example.org\r\nTo: Bob <b@example.org>\r\nSender: s@example.org\r\nReply-To: r@example.org\r\n" +
			"Bcc: c@example.org\r\nSubject: plain\r\nDate: Mon, 2 Jan 2006 15:04:05 -0700\r\nMessage-ID: <m@x>\r\n\r\nbody text that is long enough to be scanned in blocks\r\n"),
		[]byte("From: Ann <a@example.org>\r\nTo: b@example.org\r\nCc: Carl\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>html body, caf\xc3\xa9</p>\r\n"),
		[]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
			"--b\r\nContent-Type: image/png; name=i.png\r\nContent-ID: <i@x>\r\nContent-Location: http://x/i.png\r\n\r\nx\r\n--b--\r\n"),
	}
	for _, name := range files {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, raw)
	}
	options := append([]Options{
		{Version: "16.1", Drafts: true, BodyPreferences: prefPlain},
		{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyPlain, TruncationSize: 20, Preview: 10}}},
		{Version: "14.1", BodyPreferences: []BodyPreference{{Type: BodyMIME}}},
	}, fuzzOptions...)
	meta := Meta{UID: 4, Flags: []string{`\Flagged`, "Work"}}
	for i, raw := range msgs {
		for _, opts := range options {
			buf := bytes.Clone(raw)
			item, err := Build(context.Background(), FromBytes(buf, meta), opts)
			if err != nil {
				t.Fatal(err)
			}
			want := toXML(t, item.ApplicationData)
			bodyBuf := bytes.Clone(raw)
			body, err := BuildBody(context.Background(), FromBytes(bodyBuf, meta), opts)
			if err != nil {
				t.Fatal(err)
			}
			wantBody := toXML(t, body)
			src := &clobberSource{Source: FromBytes(bytes.Clone(raw), Meta{UID: 4, Flags: meta.Flags, InternalDate: time.Unix(1e9, 0)})}
			viaSource, err := Build(context.Background(), src, opts)
			if err != nil {
				t.Fatal(err)
			}
			wantSource := toXML(t, viaSource.ApplicationData)

			clear(buf)
			clear(bodyBuf)
			src.clobber()
			for _, c := range []struct {
				what string
				e    *wbxml.Element
				want []byte
			}{{"Build", item.ApplicationData, want}, {"BuildBody", body, wantBody}, {"Build over a Source", viaSource.ApplicationData, wantSource}} {
				if got := toXML(t, c.e); !bytes.Equal(got, c.want) {
					t.Errorf("message %d, %+v: %s changed when the message's bytes were zeroed:\n%s\nwas\n%s", i, opts, c.what, got, c.want)
				}
			}
		}
	}
}
