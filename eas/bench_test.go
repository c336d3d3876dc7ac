package eas

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func BenchmarkParseQueryPlain(b *testing.B) {
	h := http.Header{"Ms-Asprotocolversion": {"16.1"}, "X-Ms-Policykey": {"1234567"}}
	q := "Cmd=Sync&User=jane%40example.com&DeviceId=ApplF17ABCDEF&DeviceType=iPhone"
	for b.Loop() {
		if _, err := ParseQuery(q, h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseQueryBase64(b *testing.B) {
	q := b64Query{version: 141, code: 0, locale: 0x409, deviceID: []byte{0x8e, 0x22, 0x8d, 0xec, 0x38, 0x8f, 0xca, 0xf0},
		policyKey: key(99), deviceType: "WP8", params: [][]byte{param(7, "\x02")}}.String()
	h := http.Header{}
	for b.Loop() {
		if _, err := ParseQuery(q, h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPost measures the front door's own cost for one command: a
// cached login, query parsing, WBXML decoding of the body, the handler's
// document encoded and gzipped. No device store.
func BenchmarkPost(b *testing.B) {
	e := newEnv(b)
	e.srv.Handle("FolderSync", folderSyncOK)
	body := folderSyncBody(b)
	b.ReportAllocs()
	for b.Loop() {
		r := post("FolderSync", "14.1", body)
		r.Header.Set("Accept-Encoding", "gzip")
		w := httptest.NewRecorder()
		e.srv.ServeHTTP(w, r)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
	}
}
