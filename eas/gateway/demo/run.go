package demo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/easgate/easgate/eas/gateway"
)

// GatewayOptions configure NewGateway.
type GatewayOptions struct {
	// Listen and AdminListen are the gateway's listeners; defaults
	// 127.0.0.1:8080 and 127.0.0.1:8081. Use "127.0.0.1:0" for free ports.
	Listen, AdminListen string
	// PublicURL is what Autodiscover hands out (see gateway.Config).
	PublicURL string
	// Password is the demo accounts' password; "" generates one.
	Password string
	// Logger receives the gateway's and the mail servers' logs.
	Logger *slog.Logger
	// Configure, when not nil, may adjust the gateway configuration before
	// the gateway is built (tests inject a sleeper there).
	Configure func(*gateway.Config)
}

// Demo is a complete easgate with its own mail system and device store,
// as `easgate demo` runs it.
type Demo struct {
	Mail    *Mail
	Gateway *gateway.Gateway
	// AdminToken is the admin API's bearer token, random per run.
	AdminToken string

	dataDir string
}

// NewGateway starts the demo mail system, builds a gateway on it with a
// bbolt store in a fresh temporary directory and a random admin token, and
// binds the listeners. Run serves; Close (or the end of Run) removes
// everything.
func NewGateway(o GatewayOptions) (*Demo, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:8080"
	}
	if o.AdminListen == "" {
		o.AdminListen = "127.0.0.1:8081"
	}
	d := &Demo{AdminToken: newToken()}
	var err error
	if d.dataDir, err = os.MkdirTemp("", "easgate-demo-"); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if d.Mail, err = Start(Options{Password: o.Password, Logger: o.Logger}); err != nil {
		d.Close()
		return nil, err
	}
	cfg := gateway.Config{
		Listen:       o.Listen,
		AdminListen:  o.AdminListen,
		AdminToken:   d.AdminToken,
		PublicURL:    o.PublicURL,
		IMAP:         d.Mail.IMAPAddr,
		IMAPSecurity: gateway.SecurityNone,
		SMTP:         d.Mail.SMTPAddr,
		SMTPSecurity: gateway.SecurityNone,
		DataDir:      d.dataDir,
	}
	if o.Configure != nil {
		o.Configure(&cfg)
	}
	if d.Gateway, err = gateway.New(cfg, o.Logger); err != nil {
		d.Close()
		return nil, err
	}
	if err := d.Gateway.Listen(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// newToken returns 32 random bytes in hex.
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// EASURL is the URL phones and easclient talk to (scheme and host; the
// EAS path is /Microsoft-Server-ActiveSync below it).
func (d *Demo) EASURL() string { return "http://" + d.Gateway.Addr() }

// AdminURL is the admin API's base URL.
func (d *Demo) AdminURL() string { return "http://" + d.Gateway.AdminAddr() }

// PrintBanner writes what a person needs to try the demo.
func (d *Demo) PrintBanner(w io.Writer) {
	fmt.Fprintf(w, `easgate demo is running. Press Ctrl-C to stop; nothing is kept.

  EAS server      %s/Microsoft-Server-ActiveSync
                  (on a phone: server %s, SSL off)
  Accounts        %s and %s
  Password        %s

  Admin API       %s/api/v1/devices
  Admin token     %s
                  curl -H "Authorization: Bearer %s" %s/api/v1/devices

  IMAP (no TLS)   %s     SMTP (no TLS)  %s
`, d.EASURL(), d.Gateway.Addr(), d.Mail.Accounts[0].User, d.Mail.Accounts[1].User, d.Mail.Accounts[0].Password,
		d.AdminURL(), d.AdminToken, d.AdminToken, d.AdminURL(), d.Mail.IMAPAddr, d.Mail.SMTPAddr)
}

// Run serves until ctx ends and then removes everything.
func (d *Demo) Run(ctx context.Context) error {
	err := d.Gateway.Run(ctx)
	return errors.Join(err, d.Close())
}

// Close stops the mail system and removes the temporary store.
func (d *Demo) Close() error {
	var errs []error
	if d.Gateway != nil {
		errs = append(errs, d.Gateway.Close())
	}
	if d.Mail != nil {
		errs = append(errs, d.Mail.Close())
	}
	if d.dataDir != "" {
		errs = append(errs, os.RemoveAll(d.dataDir))
	}
	return errors.Join(errs...)
}
