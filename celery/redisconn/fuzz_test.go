package redisconn

import (
	"strings"
	"testing"
)

// FuzzParse: any URL text either parses into a usable spec or fails with an error; it never
// panics, and neither the error nor the spec's description shows the password.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"redis://127.0.0.1:6379/0",
		"rediss://:pw@h:6380/1?dial_timeout=1s",
		"unix:///run/redis.sock?db=2",
		"sentinel://:pw@127.0.0.1:26390/3;sentinel://127.0.0.1:26391;sentinel://127.0.0.1:26392",
		"sentinel://[::1]",
		"sentinel://h:1;redis://h:2",
		"sentinel://:p@ss@h:1/0",
		"redis://a;redis://b",
		";;",
		"sentinel://h:1/2;sentinel://h:2/3",
	} {
		f.Add(s, "mymaster", "")
		f.Add(s, "", "pw")
	}
	f.Fuzz(func(t *testing.T, raw, master, password string) {
		tr := map[string]any{"master_name": master, "password": password}
		s, err := Parse(raw, tr)
		const secret = "s3cr3t-not-in-output"
		if err != nil {
			if s != nil {
				t.Fatalf("Parse(%q) returned a spec with its error %v", raw, err)
			}
			return
		}
		if s.Options == nil {
			t.Fatalf("Parse(%q): no options", raw)
		}
		if s.IsSentinel() {
			if len(s.SentinelAddrs) == 0 || s.MasterName != master || master == "" {
				t.Fatalf("Parse(%q): sentinel spec without Sentinels or master: %+v", raw, s)
			}
			if f := s.FailoverOptions(); f == nil || f.MasterName != master {
				t.Fatalf("Parse(%q): failover options %+v", raw, f)
			}
		}
		// Redaction: put a known password into the first URL and look for it in the outputs.
		scheme, rest, ok := strings.Cut(raw, "://")
		if !ok || strings.ContainsAny(rest, "@;") {
			return
		}
		withPw := scheme + "://:" + secret + "@" + rest
		if _, err := Parse(withPw, map[string]any{"master_name": master}); err != nil && strings.Contains(err.Error(), secret) {
			t.Fatalf("Parse(%q): error %q shows the password", withPw, err)
		}
		if strings.Contains(Redact(withPw), secret) {
			t.Fatalf("Redact(%q) shows the password", withPw)
		}
	})
}
