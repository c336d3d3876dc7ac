package redisstore

import (
	"errors"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/easgate/easgate/devices"
)

func TestEscape(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice@example.org", "alice@example.org"},
		{"a{b}@x.org", "a%7Bb%7D@x.org"},
		{`DOMAIN\user`, "DOMAIN%5Cuser"},
		{"%41", "%2541"},
		{"x:y z", "x%3Ay%20z"},
		{"ü", "%C3%BC"},
		{"a\x00b", "a%00b"},
	}
	for _, tt := range tests {
		if got := escape(tt.in); got != tt.want {
			t.Errorf("escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestNewRejectsBadPrefix(t *testing.T) {
	for _, p := range []string{"", "a{b", "}"} {
		rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
		if _, err := New(rdb, WithPrefix(p)); !errors.Is(err, devices.ErrInvalid) {
			t.Errorf("New with prefix %q: %v, want ErrInvalid", p, err)
		}
		rdb.Close()
	}
}
