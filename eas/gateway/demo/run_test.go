package demo

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/eas/admin"
	"github.com/easgate/easgate/eas/easclient"
)

// TestDemoGateway starts the whole demo in-process on free ports and walks
// the first steps of a phone's setup against it: OPTIONS, Provision (both
// phases) and an authenticated Settings request; then the admin API must
// list the device.
func TestDemoGateway(t *testing.T) {
	d, err := NewGateway(GatewayOptions{
		Listen: "127.0.0.1:0", AdminListen: "127.0.0.1:0", Password: "demopass",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	var banner strings.Builder
	d.PrintBanner(&banner)
	for _, want := range []string{d.EASURL() + "/Microsoft-Server-ActiveSync", "demo@example.com", "demopass", d.AdminToken} {
		if !strings.Contains(banner.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, banner.String())
		}
	}

	c := &easclient.Client{BaseURL: d.EASURL(), User: "demo@example.com", Password: "demopass",
		DeviceID: "ApplDEMO0001", DeviceType: "iPhone", Version: "16.1", UserAgent: "Apple-iPhone15C2/2201.108"}
	r, err := c.Options(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.HTTPStatus != http.StatusOK || !strings.Contains(r.Header.Get("MS-ASProtocolVersions"), "16.1") {
		t.Fatalf("OPTIONS = %d %v", r.HTTPStatus, r.Header)
	}

	bad := &easclient.Client{BaseURL: d.EASURL(), User: "demo@example.com", Password: "wrong", DeviceID: "ApplDEMO0001", DeviceType: "iPhone"}
	if r, err := bad.Options(ctx); err != nil || r.HTTPStatus != http.StatusUnauthorized {
		t.Fatalf("OPTIONS with a wrong password = %v, %v", r, err)
	}

	res, err := c.Provision(ctx, &easclient.DeviceInformation{Model: "iPhone15,2", OS: "iOS 18.1", FriendlyName: "Dana's iPhone"})
	if err != nil {
		t.Fatal(err)
	}
	if res.PolicyKey == 0 {
		t.Fatalf("Provision gave no final key: phase 1 %d %x", res.Phase1.HTTPStatus, res.Phase1.Body)
	}
	// FolderSync 0: the seeded folders, the default ones typed (MS-ASCMD
	// 2.2.3.186.3: 2 Inbox, 3 Drafts, 4 Deleted Items, 5 Sent Items),
	// the nested one under its parent.
	r, fc, err := c.FolderSync(ctx, "0")
	if err != nil {
		t.Fatal(err)
	}
	if r.HTTPStatus != http.StatusOK || fc.Status != 1 || fc.SyncKey == "" || fc.SyncKey == "0" {
		t.Fatalf("FolderSync 0 = %d status %d key %q", r.HTTPStatus, fc.Status, fc.SyncKey)
	}
	byName := map[string]easclient.Folder{}
	types := map[int]int{}
	for _, f := range fc.Add {
		byName[f.DisplayName] = f
		types[f.Type]++
	}
	for _, typ := range []int{2, 3, 4, 5} {
		if types[typ] != 1 {
			t.Errorf("%d folders of type %d, want 1: %+v", types[typ], typ, fc.Add)
		}
	}
	if fc.Count != len(fc.Add) || len(fc.Add) != len(Folders) {
		t.Errorf("FolderSync lists %d folders (Count %d), want %d: %+v", len(fc.Add), fc.Count, len(Folders), fc.Add)
	}
	if p, e := byName["Projects"], byName["Easgate"]; p.ServerID == "" || e.ParentID != p.ServerID {
		t.Errorf("nested folder: Projects %+v, Easgate %+v", p, e)
	}

	r, err = c.GetUserInformation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.HTTPStatus != http.StatusOK || r.Status() != 1 {
		t.Errorf("Settings UserInformation = %d status %d", r.HTTPStatus, r.Status())
	}

	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, d.AdminURL()+"/api/v1/devices?user=demo@example.com", nil)
	req.Header.Set("Authorization", "Bearer "+d.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list admin.DeviceList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("admin list = %d, %v", resp.StatusCode, err)
	}
	if len(list.Devices) != 1 {
		t.Fatalf("admin lists %d devices, want 1", len(list.Devices))
	}
	dev := list.Devices[0]
	want := devices.Device{User: "demo@example.com", ID: "appldemo0001", Type: "iPhone", ProtocolVersion: "16.1", PolicyKey: res.PolicyKey}
	if dev.User != want.User || dev.ID != want.ID || dev.Type != want.Type || dev.ProtocolVersion != want.ProtocolVersion ||
		dev.PolicyKey != want.PolicyKey || dev.Info.Model != "iPhone15,2" {
		t.Errorf("admin device = %+v", dev)
	}
}
