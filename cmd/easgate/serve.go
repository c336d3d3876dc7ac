package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/easgate/easgate/eas/gateway"
)

// envPrefix starts the environment variable of every serve flag:
// -admin-listen is also EASGATE_ADMIN_LISTEN.
const envPrefix = "EASGATE_"

// envName returns the environment variable for a flag name.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// serveFlags defines the flags of `easgate serve` on fs, writing into cfg
// and the two security strings.
func serveFlags(fs *flag.FlagSet, cfg *gateway.Config, imapSec, smtpSec *string) {
	fs.StringVar(&cfg.Listen, "listen", gateway.DefaultListen, "EAS listener `address`")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate `file` (PEM) for the EAS listener; with -tls-key it serves HTTPS")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key `file` (PEM)")
	fs.StringVar(&cfg.PublicURL, "public-url", "", "public EAS `URL` handed out by Autodiscover (default https://<Host>/Microsoft-Server-ActiveSync)")
	fs.StringVar(&cfg.MailDomain, "mail-domain", "", "`domain` that completes logins without @ into addresses")
	fs.StringVar(&cfg.IMAP, "imap", "", "IMAP server `host:port` (required)")
	fs.StringVar(imapSec, "imap-security", string(gateway.SecurityNone), "IMAP connection security: none, starttls or tls")
	fs.StringVar(&cfg.SMTP, "smtp", "", "SMTP submission server `host:port`")
	fs.StringVar(smtpSec, "smtp-security", string(gateway.SecurityNone), "SMTP connection security: none, starttls or tls")
	fs.StringVar(&cfg.Redis, "redis", "", "Redis `URL` for the device store (redis://host:6379/0; add &addr=host:port… for a Cluster); default: bbolt file under -data")
	fs.StringVar(&cfg.DataDir, "data", gateway.DefaultDataDir, "`directory` of the embedded device store (without -redis)")
	fs.StringVar(&cfg.AdminListen, "admin-listen", gateway.DefaultAdminListen, "admin API listener `address` (\"-\" disables it); needs EASGATE_ADMIN_TOKEN")
	fs.StringVar(&cfg.PolicyFile, "policy", "", "policy `file` (TOML, see docs/policy.md); SIGHUP reloads it")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", gateway.DefaultShutdownTimeout, "how long to wait for requests in flight on SIGTERM or SIGINT")
	fs.DurationVar(&cfg.PingMinHeartbeat, "ping-min-heartbeat", 0, "shortest heartbeat accepted from Ping and hanging Sync (default 60s)")
	fs.DurationVar(&cfg.PingMaxHeartbeat, "ping-max-heartbeat", 0, "longest heartbeat accepted from Ping and hanging Sync (default 3540s)")
	fs.IntVar(&cfg.PingMaxFolders, "ping-max-folders", 0, "most folders one Ping may watch (default 300)")
	fs.DurationVar(&cfg.PollInterval, "poll-interval", 0, "how often a user's watcher reads the marks of folders IMAP IDLE does not cover (default 30s)")
	fs.DurationVar(&cfg.WatchLinger, "watch-linger", 0, "how long a user's watcher stays after its last waiting request ended (default 10s)")
	fs.IntVar(&cfg.IMAPMaxConnsPerUser, "imap-max-conns", 0, "pooled IMAP connections per user, besides the watcher's (default 2)")
	fs.DurationVar(&cfg.IMAPIdleTimeout, "imap-idle-timeout", 0, "close pooled IMAP connections unused this long (default 5m)")
	fs.DurationVar(&cfg.IMAPLendWait, "imap-lend-wait", 0, "how long a request waits for its user's IDLE connection, lent to another request, before opening a pooled one (default 1s; negative: never borrow it)")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", 0, "server-wide write timeout; Ping and hanging Sync extend their own (default 5m)")
}

// parseServe turns the arguments of `easgate serve` and the environment
// into a Config. Each flag may also be set as EASGATE_<NAME> (dashes
// become underscores); a flag on the command line wins over the
// environment. The admin token comes only from EASGATE_ADMIN_TOKEN, so
// that it never shows in a process list.
func parseServe(args []string, getenv func(string) string, stderr io.Writer) (gateway.Config, error) {
	var cfg gateway.Config
	var imapSec, smtpSec string
	fs := flag.NewFlagSet("easgate serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serveFlags(fs, &cfg, &imapSec, &smtpSec)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: easgate serve -imap host:port [flags]\n\n"+
			"Serves Exchange ActiveSync for the users of an IMAP server. Every flag can\n"+
			"also be set in the environment as %s<NAME>, e.g. EASGATE_IMAP,\n"+
			"EASGATE_ADMIN_LISTEN. The admin API token is read from EASGATE_ADMIN_TOKEN.\n\n", envPrefix)
		fs.PrintDefaults()
	}

	var envErr error
	fs.VisitAll(func(f *flag.Flag) {
		name := envName(f.Name)
		v := getenv(name)
		if v == "" || envErr != nil {
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			envErr = fmt.Errorf("%s=%q: %v", name, v, err)
		}
	})
	if envErr != nil {
		fmt.Fprintln(stderr, "easgate serve:", envErr)
		return cfg, errUsage
	}
	if err := parseArgs(fs, args, stderr); err != nil {
		return cfg, err
	}
	var err error
	if cfg.IMAPSecurity, err = gateway.ParseSecurity(imapSec); err != nil {
		fmt.Fprintln(stderr, "easgate serve: -imap-security:", err)
		return cfg, errUsage
	}
	if cfg.SMTPSecurity, err = gateway.ParseSecurity(smtpSec); err != nil {
		fmt.Fprintln(stderr, "easgate serve: -smtp-security:", err)
		return cfg, errUsage
	}
	if cfg.IMAP == "" {
		fmt.Fprintln(stderr, "easgate serve: no IMAP server given (-imap host:port or EASGATE_IMAP).\n"+
			"To try easgate without a mail server, run `easgate demo`: it brings its own.")
		return cfg, errUsage
	}
	cfg.AdminToken = getenv("EASGATE_ADMIN_TOKEN")
	return cfg, nil
}

// runServe is `easgate serve`: it runs the gateway until SIGTERM or SIGINT.
func runServe(args []string) int {
	cfg, err := parseServe(args, os.Getenv, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		return 2
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	g, err := gateway.New(cfg, log)
	if err != nil {
		log.Error("cannot start", "err", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := g.Run(ctx); err != nil {
		log.Error("stopped", "err", err)
		return 1
	}
	return 0
}
