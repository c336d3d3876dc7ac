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
	"syscall"

	"github.com/easgate/easgate/eas/gateway/demo"
)

// parseDemo reads the flags of `easgate demo`.
func parseDemo(args []string, stderr io.Writer) (demo.GatewayOptions, error) {
	var o demo.GatewayOptions
	fs := flag.NewFlagSet("easgate demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "EAS listener `address` (use :8080 to let a phone on the LAN in)")
	fs.StringVar(&o.AdminListen, "admin-listen", "127.0.0.1:8081", "admin API listener `address`")
	fs.StringVar(&o.PublicURL, "public-url", "", "EAS `URL` Autodiscover hands out")
	fs.StringVar(&o.Password, "password", "", "`password` of the demo accounts (default: random)")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: easgate demo [flags]\n\n"+
			"Runs easgate with its own in-memory IMAP and SMTP servers, two seeded demo\n"+
			"accounts and a throw-away device store: nothing else is needed, and nothing\n"+
			"is kept after Ctrl-C.\n\n")
		fs.PrintDefaults()
	}
	return o, parseArgs(fs, args, stderr)
}

// runDemo is `easgate demo`.
func runDemo(args []string) int {
	o, err := parseDemo(args, os.Stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		return 2
	}
	o.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	d, err := demo.NewGateway(o)
	if err != nil {
		o.Logger.Error("cannot start the demo", "err", err)
		return 1
	}
	d.PrintBanner(os.Stdout)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := d.Run(ctx); err != nil {
		o.Logger.Error("demo stopped", "err", err)
		return 1
	}
	return 0
}
