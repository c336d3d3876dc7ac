package admin

import (
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/easgate/easgate/devices"
	"github.com/easgate/easgate/devices/redisstore"
	"github.com/easgate/easgate/devices/redistest"
)

func init() {
	storeMakers["redis"] = func(t *testing.T) devices.Store {
		rs := redistest.Start(t)
		s, err := redisstore.New(redis.NewClient(&redis.Options{Addr: rs.Addr}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
}
