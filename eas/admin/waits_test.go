package admin

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/easgate/easgate/devices"
)

// recorder is a Notifier that notes what it was asked.
type recorder struct{ calls []string }

func (r *recorder) DeviceChanged(_ context.Context, user, device string) error {
	r.calls = append(r.calls, "changed "+user+"/"+device)
	return nil
}

func (r *recorder) Wake(_ context.Context, user, device string) error {
	r.calls = append(r.calls, "wake "+user+"/"+device)
	return nil
}

// TestWaits: every change to a device ends its waiting request, wake
// wakes it, and nothing is signalled for a refused change; wake needs a
// known device and a Notifier.
func TestWaits(t *testing.T) {
	forEachStore(t, func(t *testing.T, s devices.Store) {
		f := newFixture(t, s)
		rec := &recorder{}
		f.api.waits = rec
		f.seed(t, "alice", "ApplW1", "14.1")
		for _, tc := range []struct {
			method, path string
			code         int
			call         string
		}{
			{"POST", "/api/v1/devices/alice/ApplW1/block", http.StatusOK, "changed alice/applw1"},
			{"POST", "/api/v1/devices/alice/ApplW1/allow", http.StatusOK, "changed alice/applw1"},
			{"POST", "/api/v1/devices/alice/ApplW1/wake", http.StatusOK, "wake alice/applw1"},
			{"POST", "/api/v1/devices/alice/ApplW1/account-wipe", http.StatusConflict, ""},
			{"POST", "/api/v1/devices/alice/ApplW1/wipe", http.StatusOK, "changed alice/applw1"},
			{"POST", "/api/v1/devices/alice/NoSuch/wake", http.StatusNotFound, ""},
			{"DELETE", "/api/v1/devices/alice/ApplW1", http.StatusNoContent, "changed alice/ApplW1"},
		} {
			rec.calls = nil
			code, body := f.do(t, tc.method, tc.path, "")
			if code != tc.code {
				t.Fatalf("%s %s: HTTP %d %s, want %d", tc.method, tc.path, code, body, tc.code)
			}
			var want []string
			if tc.call != "" {
				want = []string{tc.call}
			}
			if !slices.Equal(rec.calls, want) {
				t.Fatalf("%s %s: signalled %v, want %v", tc.method, tc.path, rec.calls, want)
			}
		}
		if line := auditLine(t, f.log, "wake"); line["result"] != "ok" || line["user"] != "alice" {
			t.Fatalf("audit of the first wake: %v", line)
		}
		f.api.waits = nil
		f.seed(t, "alice", "ApplW2", "14.1")
		if code, _ := f.do(t, "POST", "/api/v1/devices/alice/ApplW2/wake", ""); code != http.StatusNotImplemented {
			t.Fatalf("wake without a Notifier: HTTP %d", code)
		}
	})
}
