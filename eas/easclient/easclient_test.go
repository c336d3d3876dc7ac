package easclient

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"

	"github.com/easgate/easgate/wbxml"
)

// recorded is one request as the fake server saw it.
type recorded struct {
	method, rawQuery string
	header           http.Header
	body             []byte
	tree             *wbxml.Element
}

// fakeServer answers with reply and records every request.
type fakeServer struct {
	mu    sync.Mutex
	reqs  []recorded
	reply func(w http.ResponseWriter, r recorded)
}

func (f *fakeServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := recorded{method: r.Method, rawQuery: r.URL.RawQuery, header: r.Header.Clone(), body: body}
	if len(body) > 0 {
		rec.tree, _ = wbxml.Parse(bytes.NewReader(body), wbxml.DefaultLimits)
	}
	if r.URL.Path != Path {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, rec)
	f.mu.Unlock()
	f.reply(w, rec)
}

func writeWBXML(t *testing.T, w http.ResponseWriter, e *wbxml.Element) {
	b, err := wbxml.Marshal(e)
	if err != nil {
		t.Error(err)
		return
	}
	w.Header().Set("Content-Type", WBXMLContentType)
	w.Write(b)
}

func newClient(url string) *Client {
	return &Client{BaseURL: url, User: "alice", Password: "pw", DeviceID: "Dev1", DeviceType: "iPhone", UserAgent: "easclient-test"}
}

func TestPlainQuery(t *testing.T) {
	f := &fakeServer{reply: func(w http.ResponseWriter, r recorded) { w.WriteHeader(http.StatusOK) }}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := newClient(srv.URL)
	c.SetPolicyKey(3141592653)
	resp, err := c.DoRequest(context.Background(), "SmartReply", nil, Request{
		Params: Params{CollectionID: "5", ItemID: "5:17", SaveInSent: true, AcceptMultiPart: true},
		Body:   []byte("From: a\r\n\r\nhi"), ContentType: "message/rfc822",
	})
	if err != nil || resp.HTTPStatus != 200 || resp.Tree != nil {
		t.Fatalf("DoRequest = %+v, %v", resp, err)
	}
	got := f.reqs[0]
	q, err := url.ParseQuery(got.rawQuery)
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{"Cmd": {"SmartReply"}, "User": {"alice"}, "DeviceId": {"Dev1"}, "DeviceType": {"iPhone"},
		"CollectionId": {"5"}, "ItemId": {"5:17"}, "SaveInSent": {"T"}}
	if q.Encode() != want.Encode() {
		t.Errorf("query %s, want %s", q.Encode(), want.Encode())
	}
	for h, v := range map[string]string{
		"MS-ASProtocolVersion": "14.1", "X-MS-PolicyKey": "3141592653", "Content-Type": "message/rfc822",
		"MS-ASAcceptMultiPart": "T", "User-Agent": "easclient-test", "Accept-Encoding": "identity",
		"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("alice:pw")),
	} {
		if g := got.header.Get(h); g != v {
			t.Errorf("header %s = %q, want %q", h, g, v)
		}
	}
	if string(got.body) != "From: a\r\n\r\nhi" {
		t.Errorf("body %q", got.body)
	}

	// Ping without a key, as AOSP.
	c.DoRequest(context.Background(), "Ping", nil, Request{NoPolicyKey: true})
	if h := f.reqs[1].header; h.Get("X-MS-PolicyKey") != "" || h.Get("Content-Type") != "" {
		t.Errorf("Ping headers: key %q, content type %q", h.Get("X-MS-PolicyKey"), h.Get("Content-Type"))
	}
}

func TestBase64Query(t *testing.T) {
	c := &Client{User: "alice", DeviceID: "Dev1", DeviceType: "iPhone", Version: "16.1", Base64Query: true}
	c.SetPolicyKey(0x01020304)
	b, err := c.Base64QueryBytes("SendMail", Request{Params: Params{CollectionID: "5", SaveInSent: true}})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		161, 1, 0x09, 0x04, // 16.1, SendMail, en-US
		4, 'D', 'e', 'v', '1',
		4, 0x04, 0x03, 0x02, 0x01, // PolicyKey little-endian
		6, 'i', 'P', 'h', 'o', 'n', 'e',
		1, 1, '5', // CollectionId
		7, 1, 0x01, // Options: SaveInSent
	}
	if !bytes.Equal(b, want) {
		t.Errorf("base64 query bytes\n got %v\nwant %v", b, want)
	}

	c.SetPolicyKey(0)
	c.Base64User = true
	c.Version = "12.1"
	b, _ = c.Base64QueryBytes("FolderSync", Request{})
	want = []byte{121, 9, 0x09, 0x04, 4, 'D', 'e', 'v', '1', 0, 6, 'i', 'P', 'h', 'o', 'n', 'e', 8, 5, 'a', 'l', 'i', 'c', 'e'}
	if !bytes.Equal(b, want) {
		t.Errorf("base64 query bytes without key\n got %v\nwant %v", b, want)
	}

	for _, tc := range []struct {
		cmd, version string
	}{{"Frobnicate", "14.1"}, {"Sync", "banana"}, {"Sync", "30.1"}} {
		c.Version = tc.version
		if _, err := c.Base64QueryBytes(tc.cmd, Request{}); !errors.Is(err, ErrBase64) {
			t.Errorf("%s in %s: err %v, want ErrBase64", tc.cmd, tc.version, err)
		}
	}

	// On the wire: the whole query is the base64 value, no headers carry
	// version or key.
	f := &fakeServer{reply: func(w http.ResponseWriter, r recorded) {}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	c = newClient(srv.URL)
	c.Base64Query = true
	c.SetPolicyKey(7)
	if _, err := c.Do(context.Background(), "FolderSync", FolderSyncRequest("0")); err != nil {
		t.Fatal(err)
	}
	got := f.reqs[0]
	raw, err := base64.StdEncoding.DecodeString(got.rawQuery)
	if err != nil {
		t.Fatalf("query %q is not base64: %v", got.rawQuery, err)
	}
	if raw[0] != 141 || raw[1] != 9 {
		t.Errorf("decoded query starts %v", raw[:2])
	}
	if got.header.Get("MS-ASProtocolVersion") != "" || got.header.Get("X-MS-PolicyKey") != "" {
		t.Errorf("base64 request carries version/key headers: %v", got.header)
	}
	if got.tree == nil || got.tree.Tag != wbxml.FolderHierarchyFolderSync || got.tree.ChildText(wbxml.FolderHierarchySyncKey) != "0" {
		t.Errorf("body does not decode to FolderSync 0: %x", got.body)
	}
}

func TestGzipAndDecoding(t *testing.T) {
	doc := FolderSyncRequest("1")
	f := &fakeServer{reply: func(w http.ResponseWriter, r recorded) {
		b, _ := wbxml.Marshal(doc)
		w.Header().Set("Content-Type", WBXMLContentType)
		if r.header.Get("Accept-Encoding") == "gzip" {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write(b)
			zw.Close()
			return
		}
		w.Write(b)
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	for _, gz := range []bool{false, true} {
		c := newClient(srv.URL)
		c.Gzip = gz
		r, err := c.Do(context.Background(), "FolderSync", nil)
		if err != nil {
			t.Fatal(err)
		}
		if r.Gzipped != gz || r.Tree == nil || r.Tree.ChildText(wbxml.FolderHierarchySyncKey) != "1" {
			t.Errorf("gzip %v: Gzipped %v, tree %v", gz, r.Gzipped, r.Tree)
		}
		if gz && r.WireLength == len(r.Body) {
			t.Errorf("gzip: wire length %d equals body length", r.WireLength)
		}
	}

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", WBXMLContentType)
		w.Write([]byte{3, 1, 106, 0, 0x45})
	}))
	defer bad.Close()
	r, err := newClient(bad.URL).Do(context.Background(), "Sync", nil)
	var ce *Error
	if !errors.As(err, &ce) || r == nil || r.HTTPStatus != 200 {
		t.Errorf("truncated WBXML: %v, %+v", err, r)
	}
}

// provisionServer is a two-phase Provision server with fixed keys; wipe
// makes phase 1 carry a wipe directive.
func provisionServer(t *testing.T, wipe wbxml.Tag) *fakeServer {
	return &fakeServer{reply: func(w http.ResponseWriter, r recorded) {
		pol := r.tree.Child(wbxml.ProvisionPolicies).Child(wbxml.ProvisionPolicy)
		key, status := "1111", "1"
		if pol.Has(wbxml.ProvisionPolicyKey) {
			if pol.ChildText(wbxml.ProvisionPolicyKey) != "1111" {
				status = "5"
			}
			key = "2222"
		}
		resp := wbxml.E(wbxml.ProvisionProvision, wbxml.T(wbxml.ProvisionStatus, "1"),
			wbxml.E(wbxml.ProvisionPolicies, wbxml.E(wbxml.ProvisionPolicy,
				wbxml.T(wbxml.ProvisionPolicyType, PolicyTypeWBXML),
				wbxml.T(wbxml.ProvisionStatus, status),
				wbxml.T(wbxml.ProvisionPolicyKey, key))))
		if wipe != 0 {
			resp.Add(wbxml.E(wipe))
		}
		writeWBXML(t, w, resp)
	}}
}

func TestProvision(t *testing.T) {
	f := provisionServer(t, 0)
	srv := httptest.NewServer(f)
	defer srv.Close()
	c := newClient(srv.URL)
	c.Version = "16.1"
	info := &DeviceInformation{Model: "iPhone15,2", OS: "iOS 18.1", FriendlyName: "Alice's iPhone", EnableOutboundSMS: true}
	res, err := c.Provision(context.Background(), info)
	if err != nil {
		t.Fatal(err)
	}
	if res.TemporaryKey != 1111 || res.PolicyKey != 2222 || c.PolicyKey() != 2222 || res.Phase2 == nil {
		t.Errorf("result %+v, client key %d", res, c.PolicyKey())
	}
	p1 := f.reqs[0]
	set := p1.tree.Child(wbxml.SettingsDeviceInformation).Child(wbxml.SettingsSet)
	if set.ChildText(wbxml.SettingsModel) != "iPhone15,2" || set.ChildText(wbxml.SettingsEnableOutboundSMS) != "1" || set.Has(wbxml.SettingsIMEI) {
		t.Errorf("phase 1 DeviceInformation: %+v", set)
	}
	if p1.header.Get("X-MS-PolicyKey") != "0" {
		t.Errorf("phase 1 key header %q", p1.header.Get("X-MS-PolicyKey"))
	}
	pol := f.reqs[1].tree.Child(wbxml.ProvisionPolicies).Child(wbxml.ProvisionPolicy)
	if pol.ChildText(wbxml.ProvisionPolicyKey) != "1111" || pol.ChildText(wbxml.ProvisionStatus) != "1" {
		t.Errorf("phase 2 policy: key %q status %q", pol.ChildText(wbxml.ProvisionPolicyKey), pol.ChildText(wbxml.ProvisionStatus))
	}

	for _, tc := range []struct {
		tag         wbxml.Tag
		full, accnt bool
	}{{wbxml.ProvisionRemoteWipe, true, false}, {wbxml.ProvisionAccountOnlyRemoteWipe, false, true}} {
		f := provisionServer(t, tc.tag)
		srv := httptest.NewServer(f)
		c := newClient(srv.URL)
		res, err := c.Provision(context.Background(), nil)
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		if res.RemoteWipe != tc.full || res.AccountOnlyRemoteWipe != tc.accnt || res.Phase2 != nil || len(f.reqs) != 1 || c.PolicyKey() != 0 {
			t.Errorf("%v: result %+v after %d requests", tc.tag, res, len(f.reqs))
		}
		if f.reqs[0].tree.Has(wbxml.SettingsDeviceInformation) {
			t.Error("DeviceInformation sent without info")
		}
	}
}

func TestWipeAckAndParseFolderSync(t *testing.T) {
	b, err := wbxml.Marshal(WipeAck(1, true))
	if err != nil {
		t.Fatal(err)
	}
	tree, err := wbxml.Parse(bytes.NewReader(b), wbxml.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if tree.Has(wbxml.ProvisionPolicies) || tree.Child(wbxml.ProvisionAccountOnlyRemoteWipe).ChildText(wbxml.ProvisionStatus) != "1" {
		t.Errorf("wipe ack %+v", tree)
	}

	fe := func(id, parent, name string, typ int) *wbxml.Element {
		return wbxml.E(wbxml.FolderHierarchyAdd, wbxml.T(wbxml.FolderHierarchyServerId, id), wbxml.T(wbxml.FolderHierarchyParentId, parent),
			wbxml.T(wbxml.FolderHierarchyDisplayName, name), wbxml.T(wbxml.FolderHierarchyType, strconv.Itoa(typ)))
	}
	doc := wbxml.E(wbxml.FolderHierarchyFolderSync, wbxml.T(wbxml.FolderHierarchyStatus, "1"), wbxml.T(wbxml.FolderHierarchySyncKey, "17"),
		wbxml.E(wbxml.FolderHierarchyChanges, wbxml.T(wbxml.FolderHierarchyCount, "2"), fe("1", "0", "Inbox", 2), fe("7", "1", "Sub", 12),
			wbxml.E(wbxml.FolderHierarchyDelete, wbxml.T(wbxml.FolderHierarchyServerId, "9"))))
	fc := ParseFolderSync(doc)
	if fc.Status != 1 || fc.SyncKey != "17" || fc.Count != 2 || len(fc.Add) != 2 || fc.Add[1] != (Folder{"7", "1", "Sub", 12}) || len(fc.Delete) != 1 || fc.Delete[0] != "9" {
		t.Errorf("ParseFolderSync = %+v", fc)
	}
	r := &Response{Tree: doc}
	if r.Status() != 1 {
		t.Errorf("Status() = %d", r.Status())
	}
}

func TestOptions(t *testing.T) {
	f := &fakeServer{reply: func(w http.ResponseWriter, r recorded) {
		w.Header().Set("MS-ASProtocolVersions", "14.1,16.1")
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	r, err := newClient(srv.URL + "/").Options(context.Background())
	if err != nil || r.HTTPStatus != 200 || r.Header.Get("MS-ASProtocolVersions") != "14.1,16.1" {
		t.Fatalf("Options = %+v, %v", r, err)
	}
	if f.reqs[0].method != http.MethodOptions || f.reqs[0].rawQuery != "" {
		t.Errorf("request %s ?%s", f.reqs[0].method, f.reqs[0].rawQuery)
	}
}

func TestAutodiscover(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		body, _ = io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, "<Autodiscover/>")
	}))
	defer srv.Close()
	r, err := newClient(srv.URL).Autodiscover(context.Background(), "a<b@example.com")
	if err != nil || r.HTTPStatus != 200 || string(r.Body) != "<Autodiscover/>" || r.Tree != nil {
		t.Fatalf("Autodiscover = %+v, %v", r, err)
	}
	if got.Method != http.MethodPost || got.URL.Path != AutodiscoverPath || got.Header.Get("Content-Type") != "text/xml" {
		t.Errorf("request %s %s %q", got.Method, got.URL.Path, got.Header.Get("Content-Type"))
	}
	if user, _, ok := got.BasicAuth(); !ok || user != "alice" {
		t.Errorf("no Basic auth")
	}
	if !bytes.Contains(body, []byte("<EMailAddress>a&lt;b@example.com</EMailAddress>")) || !bytes.Contains(body, []byte("mobilesync/responseschema/2006")) {
		t.Errorf("body %s", body)
	}
}
