package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWBXMLCommand round-trips every golden document through the command
// and checks that bad input gives one line and status 1, never a panic.
func TestWBXMLCommand(t *testing.T) {
	files, err := filepath.Glob("../../testdata/wbxml/*.wbxml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden WBXML files found (%v)", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			wantXML, err := os.ReadFile(strings.TrimSuffix(f, ".wbxml") + ".xml")
			if err != nil {
				t.Fatal(err)
			}
			var xml, stderr bytes.Buffer
			if code := wbxmlCommand([]string{"decode", f}, nil, &xml, &stderr); code != 0 {
				t.Fatalf("decode: status %d: %s", code, stderr.String())
			}
			if !bytes.Equal(xml.Bytes(), wantXML) {
				t.Errorf("decode output differs from %s.xml", strings.TrimSuffix(filepath.Base(f), ".wbxml"))
			}
			var bin bytes.Buffer
			if code := wbxmlCommand([]string{"encode"}, &xml, &bin, &stderr); code != 0 {
				t.Fatalf("encode: status %d: %s", code, stderr.String())
			}
			if !bytes.Equal(bin.Bytes(), want) {
				t.Errorf("encode(decode(x)) != x")
			}
		})
	}
}

func TestWBXMLCommandErrors(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		stdin string
		code  int
		msg   string
	}{
		{"no mode", nil, "", 2, "usage"},
		{"bad mode", []string{"frob"}, "", 2, "usage"},
		{"missing file", []string{"decode", "/nonexistent/x.wbxml"}, "", 1, "no such file"},
		{"truncated", []string{"decode"}, "\x03\x01\x6a\x00\x45", 1, "easgate wbxml decode: stdin:"},
		{"not wbxml", []string{"decode"}, "<Sync/>", 1, "easgate wbxml decode: stdin:"},
		{"bad xml", []string{"encode"}, "<Sync xmlns=\"AirSync:\"><Nope/></Sync>", 1, "easgate wbxml encode: stdin:"},
		{"empty xml", []string{"encode"}, "", 1, "easgate wbxml encode: stdin:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, stderr bytes.Buffer
			code := wbxmlCommand(tt.args, strings.NewReader(tt.stdin), &out, &stderr)
			if code != tt.code {
				t.Errorf("status %d, want %d (stderr %q)", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.msg) || strings.Count(stderr.String(), "\n") != 1 && tt.code == 1 {
				t.Errorf("stderr %q, want one line containing %q", stderr.String(), tt.msg)
			}
		})
	}
}

func TestRunDispatch(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"nope"}, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown command "nope"`) {
		t.Errorf("unknown command: status %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"help"}, &stderr); code != 0 || !strings.Contains(stderr.String(), "wbxml") {
		t.Errorf("help: status %d, stderr %q", code, stderr.String())
	}
	var v bytes.Buffer
	printVersion(&v)
	if !strings.HasPrefix(v.String(), "easgate ") {
		t.Errorf("version output %q", v.String())
	}
}
