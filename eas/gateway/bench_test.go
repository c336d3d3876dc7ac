package gateway

import (
	"context"
	"testing"

	"github.com/easgate/easgate/devices/redistest"
	"github.com/easgate/easgate/eas/easclient"
)

// BenchmarkRoundTrip measures one EAS request through the whole gateway
// over loopback HTTP: Basic auth (cached), device registration, the
// provisioning gate and the response, on each device store. The request is
// a Settings of an unprovisioned device, answered 449 with Status 142, so
// that no mail server is involved.
func BenchmarkRoundTrip(b *testing.B) {
	for _, store := range []string{"bolt", "redis"} {
		b.Run(store, func(b *testing.B) {
			cfg := Config{Listen: "127.0.0.1:0", AdminListen: "-", Authenticator: passwords{"alice": "pw"}}
			if store == "redis" {
				cfg.Redis = "redis://" + redistest.Start(b).Addr
			} else {
				cfg.DataDir = b.TempDir()
			}
			g, err := New(cfg, quiet)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			if err := g.Listen(); err != nil {
				b.Fatal(err)
			}
			go func() { done <- g.Run(ctx) }()
			defer func() { cancel(); <-done }()
			c := &easclient.Client{BaseURL: "http://" + g.Addr(), User: "alice", Password: "pw", DeviceID: "BenchDev", DeviceType: "iPhone", Version: "14.1"}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				r, err := c.GetUserInformation(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if r.HTTPStatus != 449 {
					b.Fatalf("HTTP %d", r.HTTPStatus)
				}
			}
		})
	}
}
