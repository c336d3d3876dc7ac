// Package testsrv starts the mail servers that easgate's tests and load
// tools talk to: a private Dovecot 2.3 (the real IMAP backend, with
// CONDSTORE), an in-process go-imap memory server (no CONDSTORE, for the
// fallback paths and fast tests) and an in-process SMTP sink that captures
// what the gateway submits.
//
// Every server listens on a free 127.0.0.1 port and lives in its own
// temporary directory, so tests never touch a system Dovecot (143/993) or
// each other. The testing constructors (StartDovecot, StartMemIMAP,
// StartSMTPSink) register their own cleanup; the Launch variants are for
// programs such as a load generator that manage the lifetime themselves.
//
// Dovecot runs as root (mail processes as nobody, the instance directory
// world-readable for the auth process) or as an ordinary user (Dovecot's
// internal and login users set to that user, no chroot for anvil and
// imap-login). Both are exercised: the package's tests pass as root and
// when the test binary is run with `runuser -u nobody`.
//
// A missing dovecot binary is a test failure naming the Debian package to
// install, never a skip.
package testsrv

// DefaultUsers returns the users the harness is normally started with:
// alice, bob and carol, each with the password "<name>pw". A fresh map is
// returned on every call so callers may change it.
func DefaultUsers() map[string]string {
	return map[string]string{
		"alice": "alicepw",
		"bob":   "bobpw",
		"carol": "carolpw",
	}
}
