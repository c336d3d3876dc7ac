package eas

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/easgate/easgate/devices"
)

// Throttle slows down repeated wrong passwords for one user from one remote
// address: the first Free failures cost nothing, then each further attempt
// waits Base, 2×Base, 4×Base … up to Max before its password is checked.
// A failure count is forgotten Window after the last failure, and a good
// login resets it. Other addresses are not affected, so an attacker cannot
// lock a user out.
type Throttle struct {
	Free   int           // failures allowed without delay; default 2
	Base   time.Duration // first delay; default 1s
	Max    time.Duration // longest delay; default 30s
	Window time.Duration // how long a count is kept; default 15m
}

func (t Throttle) withDefaults() Throttle {
	if t.Free <= 0 {
		t.Free = 2
	}
	if t.Base <= 0 {
		t.Base = time.Second
	}
	if t.Max <= 0 {
		t.Max = 30 * time.Second
	}
	if t.Window <= 0 {
		t.Window = 15 * time.Minute
	}
	return t
}

// Delay returns how long an attempt waits when failures failures are on
// record for its user and address.
func (t Throttle) Delay(failures int) time.Duration {
	t = t.withDefaults()
	if failures < t.Free {
		return 0
	}
	d := t.Base
	for i := t.Free; i < failures; i++ {
		d *= 2
		if d >= t.Max {
			return t.Max
		}
	}
	return min(d, t.Max)
}

// credentials are the decoded HTTP Basic credentials.
type credentials struct {
	user     string // the login passed to the authenticator, DOMAIN\ removed
	password string
}

// basicAuth decodes the Authorization header (RFC 7617). Phones send UTF-8;
// Outlook sends ISO-8859-1, which is recognised by not being valid UTF-8
// (the digest §1.1, Z-Push ZP-864). The user may be "user", "user@domain"
// or "DOMAIN\user"; the NT domain is dropped, because the mail server knows
// users by login or address, never by Windows domain.
func basicAuth(r *http.Request) (credentials, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "basic "
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return credentials{}, false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len(prefix):]))
	if err != nil {
		return credentials{}, false
	}
	s := string(raw)
	if !utf8.ValidString(s) {
		s = latin1(raw)
	}
	user, password, ok := strings.Cut(s, ":")
	if !ok {
		return credentials{}, false
	}
	user = normalizeLogin(user)
	if user == "" {
		return credentials{}, false
	}
	return credentials{user: user, password: password}, true
}

// latin1 decodes ISO-8859-1, whose bytes are the first 256 code points.
func latin1(b []byte) string {
	var sb strings.Builder
	sb.Grow(len(b) * 2)
	for _, c := range b {
		sb.WriteRune(rune(c))
	}
	return sb.String()
}

// normalizeLogin trims a login and drops a DOMAIN\ prefix (Z-Push's
// Utils::SplitDomainUser).
func normalizeLogin(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\\'); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// sameUser reports whether the query's User names the authenticated login.
// Phones fill both from the same account field, but some split off the
// domain in one place only, so "user" matches "user@example.com" and the
// comparison ignores case and a DOMAIN\ prefix.
func sameUser(query, login string) bool {
	q, l := strings.ToLower(normalizeLogin(query)), strings.ToLower(login)
	if q == l {
		return true
	}
	ql, _, qAt := strings.Cut(q, "@")
	ll, _, lAt := strings.Cut(l, "@")
	return qAt != lAt && ql == ll
}

// authCache remembers successful logins for a short time so that the mail
// server is not asked on every request (a phone sends several a minute). It
// is keyed by an HMAC of user and password under a random per-process key:
// neither the password nor a plain hash of it is kept, and a changed
// password misses the cache and is checked again.
type authCache struct {
	ttl  time.Duration
	salt [32]byte

	mu      sync.Mutex
	entries map[[32]byte]time.Time // key → expiry
}

// maxCacheEntries bounds the cache; beyond it expired entries are dropped,
// and if that is not enough the whole cache is, which costs only re-checks.
const maxCacheEntries = 100000

func newAuthCache(ttl time.Duration) *authCache {
	c := &authCache{ttl: ttl, entries: make(map[[32]byte]time.Time)}
	rand.Read(c.salt[:]) // never fails (Go 1.24+)
	return c
}

// key derives the cache key of a user and password.
func (c *authCache) key(user, password string) [32]byte {
	m := hmac.New(sha256.New, c.salt[:])
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(user)))
	m.Write(n[:])
	m.Write([]byte(user))
	m.Write([]byte(password))
	var k [32]byte
	m.Sum(k[:0])
	return k
}

func (c *authCache) ok(k [32]byte, now time.Time) bool {
	if c.ttl <= 0 {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, found := c.entries[k]
	if found && now.After(exp) {
		delete(c.entries, k)
		return false
	}
	return found
}

func (c *authCache) put(k [32]byte, now time.Time) {
	if c.ttl <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxCacheEntries {
		for k, exp := range c.entries {
			if now.After(exp) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= maxCacheEntries {
			clear(c.entries)
		}
	}
	c.entries[k] = now.Add(c.ttl)
}

func (c *authCache) forget(k [32]byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, k)
}

// failureTracker counts failed logins per user and remote address, in
// memory and, when a store is configured, in the store, so that gateway
// instances behind one load balancer share the count.
type failureTracker struct {
	throttle Throttle
	store    devices.Store // may be nil
	log      *slog.Logger

	mu      sync.Mutex
	entries map[string]failureEntry
}

type failureEntry struct {
	count int
	last  time.Time
}

func newFailureTracker(t Throttle, store devices.Store, log *slog.Logger) *failureTracker {
	return &failureTracker{throttle: t.withDefaults(), store: store, log: log, entries: make(map[string]failureEntry)}
}

// failureKey is the throttle key of a login attempt: the user (case folded)
// and the remote IP address.
func failureKey(user, remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	return "auth:" + strings.ToLower(user) + "|" + host
}

// count returns the failures recorded under key: the larger of the memory
// and the store count.
func (f *failureTracker) count(ctx context.Context, key string, now time.Time) int {
	f.mu.Lock()
	e, ok := f.entries[key]
	if ok && now.Sub(e.last) > f.throttle.Window {
		delete(f.entries, key)
		e = failureEntry{}
	}
	f.mu.Unlock()
	n := e.count
	if f.store != nil {
		s, err := f.store.AuthFailures(ctx, key)
		if err != nil {
			f.log.Warn("reading the login failure count from the store failed; using this process's count", "err", err)
		}
		n = max(n, s)
	}
	return n
}

// fail records one more failure under key.
func (f *failureTracker) fail(ctx context.Context, key string, now time.Time) {
	f.mu.Lock()
	e := f.entries[key]
	if now.Sub(e.last) > f.throttle.Window {
		e.count = 0
	}
	e.count++
	e.last = now
	if len(f.entries) >= maxCacheEntries {
		for k, old := range f.entries {
			if now.Sub(old.last) > f.throttle.Window {
				delete(f.entries, k)
			}
		}
	}
	f.entries[key] = e
	f.mu.Unlock()
	if f.store != nil {
		if _, err := f.store.IncrAuthFailures(ctx, key, f.throttle.Window); err != nil {
			f.log.Warn("counting a login failure in the store failed", "err", err)
		}
	}
}

// reset clears the count under key after a good login.
func (f *failureTracker) reset(ctx context.Context, key string) {
	f.mu.Lock()
	delete(f.entries, key)
	f.mu.Unlock()
	if f.store != nil {
		if err := f.store.ResetAuthFailures(ctx, key); err != nil {
			f.log.Warn("resetting the login failure count in the store failed", "err", err)
		}
	}
}

// sleepContext waits for d or until ctx is done, whichever is first.
func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
