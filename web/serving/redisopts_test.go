package serving

import (
	"testing"
	"time"
)

func TestRedisOptions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, url                string
		pool, retries            int
		readTimeout, poolTimeout time.Duration
	}{
		{"defaults", "redis://127.0.0.1:6379/0", RedisPoolSize, -1, RedisIOTimeout, 100 * time.Millisecond},
		{"query kept", "redis://127.0.0.1:6379/2?pool_size=8&read_timeout=2s&max_retries=1", 8, 1, 2 * time.Second, 100 * time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := RedisOptions(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if !o.ContextTimeoutEnabled || o.PoolSize != tc.pool || o.MaxRetries != tc.retries ||
				o.ReadTimeout != tc.readTimeout || o.WriteTimeout != RedisIOTimeout || o.PoolTimeout != tc.poolTimeout ||
				o.MinIdleConns != RedisMinIdleConns || o.DialTimeout != RedisDialTimeout {
				t.Fatalf("options %+v", o)
			}
		})
	}
	for _, bad := range []string{"", "http://127.0.0.1:6379", "redis://127.0.0.1:6379/0?pool_size=x", "redis://127.0.0.1:6379/0?nope=1"} {
		if _, err := RedisOptions(bad); err == nil {
			t.Errorf("RedisOptions(%q): no error", bad)
		}
	}
}
