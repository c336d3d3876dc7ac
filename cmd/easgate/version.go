package main

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// runVersion is `easgate version`.
func runVersion(args []string) int {
	if len(args) != 0 {
		fmt.Fprintln(os.Stderr, "usage: easgate version")
		return 2
	}
	printVersion(os.Stdout)
	return 0
}

// printVersion writes the module version, the Go version and, when the
// binary was built from a git checkout, the revision it was built from.
func printVersion(w io.Writer) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintln(w, "easgate (no build information)")
		return
	}
	version := info.Main.Version
	if version == "" {
		version = "(devel)"
	}
	fmt.Fprintf(w, "easgate %s %s\n", version, info.GoVersion)
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision", "vcs.time", "vcs.modified":
			fmt.Fprintf(w, "%s=%s\n", s.Key, s.Value)
		}
	}
}
