package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/easgate/easgate/backend"
)

// imapAuthenticator checks HTTP Basic credentials with an IMAP LOGIN on a
// fresh connection (the eas front door caches successes, so this runs once
// per user every few minutes).
type imapAuthenticator struct {
	addr      string
	security  Security
	tlsConfig *tls.Config
}

// Timeouts of one check: connecting, and the whole exchange (greeting,
// STARTTLS, LOGIN, LOGOUT) on its one-shot connection.
const (
	dialTimeout     = 10 * time.Second
	exchangeTimeout = 30 * time.Second
)

// Authenticate implements backend.Authenticator.
func (a *imapAuthenticator) Authenticate(ctx context.Context, user, password string) error {
	c, err := a.dial(ctx)
	if err != nil {
		return fmt.Errorf("%w: %v", backend.ErrUnavailable, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	err = c.Login(user, password).Wait()
	var ie *imap.Error
	switch {
	case err == nil:
		c.Logout().Wait()
		return nil
	case errors.As(err, &ie) && ie.Type == imap.StatusResponseTypeNo:
		return fmt.Errorf("%w: %v", backend.ErrAuthFailed, err)
	}
	return fmt.Errorf("%w: IMAP LOGIN: %v", backend.ErrUnavailable, err)
}

func (a *imapAuthenticator) dial(ctx context.Context) (*imapclient.Client, error) {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", a.addr)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(exchangeTimeout))
	tc := a.clientTLS()
	opts := &imapclient.Options{TLSConfig: tc}
	var c *imapclient.Client
	switch a.security {
	case SecurityTLS:
		c = imapclient.New(tls.Client(conn, tc), opts)
	case SecurityStartTLS:
		if c, err = imapclient.NewStartTLS(conn, opts); err != nil {
			conn.Close()
			return nil, err
		}
	default:
		c = imapclient.New(conn, opts)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func (a *imapAuthenticator) clientTLS() *tls.Config {
	tc := &tls.Config{}
	if a.tlsConfig != nil {
		tc = a.tlsConfig.Clone()
	}
	if tc.ServerName == "" {
		if host, _, err := net.SplitHostPort(a.addr); err == nil {
			tc.ServerName = host
		}
	}
	return tc
}
