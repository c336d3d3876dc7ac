package imapstore_test

import (
	"net"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/easgate/easgate/backend/backendtest"
)

// TestOpenPartWithoutBinary runs the OpenPart conformance tests against
// go-imap's memory server offering IMAP4rev1 without BINARY (RFC 3516):
// the parts are fetched with BODY.PEEK and decoded in imapstore.
func TestOpenPartWithoutBinary(t *testing.T) {
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("alice", "alicepw")
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps: imap.CapSet{
			imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}, imap.CapMove: {}, imap.CapESearch: {},
			imap.CapListExtended: {}, imap.CapListStatus: {}, imap.CapNamespace: {},
		},
		InsecureAuth: true,
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		ln.Close()
		<-served
	})
	h := harness(ln.Addr().String(), map[string]string{"alice": "alicepw"}, false)
	// The server really lacks BINARY.
	c := dialOutside(t, ln.Addr().String(), "alice", "alicepw")
	if caps := c.c.Caps(); caps.Has(imap.CapBinary) || caps.Has(imap.CapIMAP4rev2) {
		t.Fatalf("the test server offers BINARY: %v", caps)
	}
	backendtest.RunOpenPart(t, h)
}
