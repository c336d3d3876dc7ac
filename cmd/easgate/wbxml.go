package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/easgate/easgate/wbxml"
)

// runWBXML is `easgate wbxml decode|encode [FILE]`.
func runWBXML(args []string) int {
	return wbxmlCommand(args, os.Stdin, os.Stdout, os.Stderr)
}

// wbxmlCommand converts between WBXML and its XML text form (docs/wbxml.md):
// decode reads WBXML and writes indented XML, encode reads that XML and
// writes WBXML. Input is FILE or, without one, stdin; output is stdout. Bad
// input gives one line on stderr and status 1.
func wbxmlCommand(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) < 1 || len(args) > 2 || (args[0] != "decode" && args[0] != "encode") {
		fmt.Fprintln(stderr, "usage: easgate wbxml decode|encode [FILE]")
		return 2
	}
	in := stdin
	name := "stdin"
	if len(args) == 2 {
		f, err := os.Open(args[1])
		if err != nil {
			fmt.Fprintf(stderr, "easgate wbxml: %v\n", err)
			return 1
		}
		defer f.Close()
		in, name = f, args[1]
	}
	out := bufio.NewWriterSize(stdout, 64<<10)
	var err error
	if args[0] == "decode" {
		err = decodeWBXML(bufio.NewReaderSize(in, 64<<10), out)
	} else {
		err = encodeXML(in, out)
	}
	if err == nil {
		err = out.Flush()
	}
	if err != nil {
		fmt.Fprintf(stderr, "easgate wbxml %s: %s: %v\n", args[0], name, oneLine(err))
		return 1
	}
	return 0
}

// decodeWBXML parses a whole WBXML document and prints its XML form. The
// command-line tool has no body-size reason to stream: Parse keeps the
// decoder's depth and size limits.
func decodeWBXML(r io.Reader, w io.Writer) error {
	lim := wbxml.DefaultLimits
	lim.MaxBytes = 1 << 30
	root, err := wbxml.Parse(r, lim)
	if err != nil {
		return err
	}
	return wbxml.ToXML(w, root)
}

// encodeXML reads the XML form and writes WBXML.
func encodeXML(r io.Reader, w io.Writer) error {
	root, err := wbxml.FromXML(r)
	if err != nil {
		return err
	}
	enc := wbxml.NewEncoder(w)
	if err := root.Encode(enc); err != nil {
		return err
	}
	return enc.Close()
}

// oneLine keeps an error message on one line.
func oneLine(err error) string {
	msg := err.Error()
	if i := strings.IndexAny(msg, "\r\n"); i >= 0 {
		return msg[:i] + " …"
	}
	return msg
}
