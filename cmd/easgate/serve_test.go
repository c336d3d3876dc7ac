package main

import (
	"bytes"
	"errors"
	"flag"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/easgate/easgate/eas/gateway"
)

func TestParseServe(t *testing.T) {
	defaults := gateway.Config{
		Listen: gateway.DefaultListen, AdminListen: gateway.DefaultAdminListen, DataDir: gateway.DefaultDataDir,
		IMAPSecurity: gateway.SecurityNone, SMTPSecurity: gateway.SecurityNone, ShutdownTimeout: gateway.DefaultShutdownTimeout,
	}
	with := func(f func(c *gateway.Config)) gateway.Config {
		c := defaults
		f(&c)
		return c
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    gateway.Config
		wantErr string // substring of stderr; "" means success
	}{
		{
			name: "flags only",
			args: []string{"-imap", "mail:143", "-listen", ":443", "-tls-cert", "c.pem", "-tls-key", "k.pem", "-redis", "redis://r:6379/2",
				"-admin-listen", "127.0.0.1:9000", "-policy", "/etc/easgate/policy.toml", "-public-url", "https://m.example/Microsoft-Server-ActiveSync",
				"-imap-security", "TLS", "-smtp", "mail:587", "-smtp-security", "starttls", "-data", "/var/lib/easgate", "-mail-domain", "example.com",
				"-shutdown-timeout", "1m", "-ping-min-heartbeat", "2m", "-ping-max-heartbeat", "30m", "-ping-max-folders", "50",
				"-poll-interval", "15s", "-watch-linger", "1s", "-imap-max-conns", "6", "-imap-idle-timeout", "1m", "-imap-lend-wait", "250ms", "-write-timeout", "3m"},
			want: gateway.Config{
				Listen: ":443", TLSCert: "c.pem", TLSKey: "k.pem", PublicURL: "https://m.example/Microsoft-Server-ActiveSync", MailDomain: "example.com",
				AdminListen: "127.0.0.1:9000", IMAP: "mail:143", IMAPSecurity: gateway.SecurityTLS, SMTP: "mail:587", SMTPSecurity: gateway.SecurityStartTLS,
				Redis: "redis://r:6379/2", DataDir: "/var/lib/easgate", PolicyFile: "/etc/easgate/policy.toml", ShutdownTimeout: time.Minute,
				PingMinHeartbeat: 2 * time.Minute, PingMaxHeartbeat: 30 * time.Minute, PingMaxFolders: 50, PollInterval: 15 * time.Second,
				WatchLinger: time.Second, IMAPMaxConnsPerUser: 6, IMAPIdleTimeout: time.Minute, IMAPLendWait: 250 * time.Millisecond, WriteTimeout: 3 * time.Minute,
			},
		},
		{
			name: "environment only",
			env: map[string]string{"EASGATE_IMAP": "mail:993", "EASGATE_IMAP_SECURITY": "tls", "EASGATE_ADMIN_LISTEN": "127.0.0.1:7000",
				"EASGATE_REDIS": "redis://r/0", "EASGATE_ADMIN_TOKEN": "tok-from-env-0123456789", "EASGATE_TLS_CERT": "c", "EASGATE_TLS_KEY": "k",
				"EASGATE_PUBLIC_URL": "https://p", "EASGATE_SMTP": "mail:465", "EASGATE_SMTP_SECURITY": "tls", "EASGATE_DATA": "/d", "EASGATE_POLICY": "/p.toml",
				"EASGATE_LISTEN": ":8443", "EASGATE_SHUTDOWN_TIMEOUT": "5s", "EASGATE_POLL_INTERVAL": "45s"},
			want: gateway.Config{
				Listen: ":8443", TLSCert: "c", TLSKey: "k", PublicURL: "https://p", AdminListen: "127.0.0.1:7000", AdminToken: "tok-from-env-0123456789",
				IMAP: "mail:993", IMAPSecurity: gateway.SecurityTLS, SMTP: "mail:465", SMTPSecurity: gateway.SecurityTLS,
				Redis: "redis://r/0", DataDir: "/d", PolicyFile: "/p.toml", ShutdownTimeout: 5 * time.Second, PollInterval: 45 * time.Second,
			},
		},
		{
			name: "flag beats environment",
			args: []string{"-imap", "flag:143", "-admin-listen", "-"},
			env:  map[string]string{"EASGATE_IMAP": "env:143", "EASGATE_ADMIN_LISTEN": "127.0.0.1:1", "EASGATE_DATA": "/from-env"},
			want: with(func(c *gateway.Config) { c.IMAP, c.AdminListen, c.DataDir = "flag:143", "-", "/from-env" }),
		},
		{
			name:    "admin token is not a flag",
			args:    []string{"-imap", "m:143", "-admin-token", "x"},
			wantErr: "flag provided but not defined: -admin-token",
		},
		{
			name:    "no IMAP points to the demo",
			args:    []string{"-listen", ":8080"},
			wantErr: "easgate demo",
		},
		{
			name:    "bad security flag",
			args:    []string{"-imap", "m:143", "-imap-security", "ssl"},
			wantErr: `-imap-security: gateway: bad configuration: security "ssl"`,
		},
		{
			name:    "bad security in the environment",
			args:    []string{"-imap", "m:143"},
			env:     map[string]string{"EASGATE_SMTP_SECURITY": "maybe"},
			wantErr: "-smtp-security",
		},
		{
			name:    "bad duration in the environment names the variable",
			args:    []string{"-imap", "m:143"},
			env:     map[string]string{"EASGATE_SHUTDOWN_TIMEOUT": "soon"},
			wantErr: `EASGATE_SHUTDOWN_TIMEOUT="soon"`,
		},
		{
			name:    "stray argument",
			args:    []string{"-imap", "m:143", "extra"},
			wantErr: `unexpected argument "extra"`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			got, err := parseServe(tc.args, func(k string) string { return tc.env[k] }, &stderr)
			if tc.wantErr != "" {
				if !errors.Is(err, errUsage) || !strings.Contains(stderr.String(), tc.wantErr) {
					t.Errorf("err %v, stderr %q; want errUsage and %q", err, stderr.String(), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err %v, stderr %s", err, stderr.String())
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("config\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestParseServeHelp(t *testing.T) {
	var stderr bytes.Buffer
	_, err := parseServe([]string{"-h"}, func(string) string { return "" }, &stderr)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{"EASGATE_ADMIN_TOKEN", "-imap-security", "-redis", "-public-url"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, stderr.String())
		}
	}
}

func TestEnvName(t *testing.T) {
	for in, want := range map[string]string{"imap": "EASGATE_IMAP", "admin-listen": "EASGATE_ADMIN_LISTEN", "tls-cert": "EASGATE_TLS_CERT"} {
		if got := envName(in); got != want {
			t.Errorf("envName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseDemo(t *testing.T) {
	var stderr bytes.Buffer
	o, err := parseDemo([]string{"-listen", ":9090", "-password", "pw"}, &stderr)
	if err != nil || o.Listen != ":9090" || o.AdminListen != "127.0.0.1:8081" || o.Password != "pw" {
		t.Errorf("parseDemo = %+v, %v", o, err)
	}
	if _, err := parseDemo([]string{"now"}, &stderr); !errors.Is(err, errUsage) {
		t.Errorf("stray argument: %v", err)
	}
}
