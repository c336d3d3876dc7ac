// Command easgate is an Exchange ActiveSync gateway for IMAP/SMTP mail
// servers. main only dispatches subcommands; the gateway itself is wired in
// eas/gateway, which the integration tests call too.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// subcommand is one `easgate NAME` command.
type subcommand struct {
	summary string
	run     func(args []string) int
}

// subcommands lists every subcommand by name. Each lives in its own file.
var subcommands = map[string]subcommand{
	"version": {"print the version and build information", runVersion},
	"wbxml":   {"decode WBXML to XML or encode XML to WBXML (easgate wbxml decode|encode [FILE])", runWBXML},
	"serve":   {"run the gateway against an IMAP/SMTP server (easgate serve -help)", runServe},
	"demo":    {"run the gateway with embedded IMAP, SMTP and a seeded demo account", runDemo},
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run dispatches args to a subcommand and returns the exit status: 0 for
// success, 1 for a failure, 2 for a usage error.
func run(args []string, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stderr)
		return 0
	}
	cmd, ok := subcommands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "easgate: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
	return cmd.run(args[1:])
}

// errUsage reports bad command-line arguments; the message has been
// printed with the usage already.
var errUsage = errors.New("usage")

// parseArgs parses a subcommand's args with fs (named "easgate NAME", with
// flag.ContinueOnError), which takes no positional arguments. It returns
// flag.ErrHelp when help was asked for, errUsage for anything wrong (the
// usage printed) and nil otherwise.
func parseArgs(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	return nil
}

// usage lists the subcommands.
func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: easgate COMMAND [ARGS]\n\ncommands:")
	names := make([]string, 0, len(subcommands))
	for n := range subcommands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-8s %s\n", n, subcommands[n].summary)
	}
}
