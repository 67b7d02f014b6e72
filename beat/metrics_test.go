package main

import (
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/forumads/forumads/internal/testenv"
)

var metricsAddrRE = regexp.MustCompile(`serving metrics addr="?([0-9.:]+)`)

// metricsURL waits for beat to log where it serves metrics and returns the base URL.
func (p *proc) metricsURL(t *testing.T) string {
	t.Helper()
	p.waitLog(t, 20*time.Second, "serving metrics")
	m := metricsAddrRE.FindStringSubmatch(p.logs.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", p.logs.String())
	}
	return "http://" + m[1]
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// metricValue returns the value of the exposition line starting with series (name and labels), or -1.
func metricValue(t *testing.T, body, series string) float64 {
	t.Helper()
	for _, l := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
			return f
		}
	}
	return -1
}

// TestMetricsServed: beat serves /metrics and /healthz; beat_publishes_total moves as slots are
// published, and every publish is observed in the lateness histogram.
func TestMetricsServed(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	cfg := s.writeConfig(t, map[string]any{
		"tick":  map[string]any{"task": "beat.tick", "schedule": 0.5},
		"daily": map[string]any{"task": "beat.daily", "schedule": 86400},
	}, nil)
	c := consume(t, s.queue)
	p := start(t, "beat", beatBin, "--config", cfg, "--metrics-addr", "127.0.0.1:0")
	base := p.metricsURL(t)

	if code, body := httpGet(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("GET /healthz = %d %q, want 200 ok", code, body)
	}
	const series = `beat_publishes_total{entry="tick",task="beat.tick"}`
	c.waitN(t, 20*time.Second, 1, func(d amqp.Delivery) bool { return d.Headers["task"] == "beat.tick" })
	var first float64
	var last string
	if err := testenv.Poll(20*time.Second, func() (bool, error) {
		_, last = httpGet(t, base+"/metrics")
		first = metricValue(t, last, series)
		return first >= 1, nil
	}); err != nil {
		t.Fatalf("%s did not reach 1 (%v):\n%s", series, err, last)
	}
	sent := len(c.snapshot())
	c.waitN(t, 20*time.Second, sent+2, func(d amqp.Delivery) bool { return true })
	_, body := httpGet(t, base+"/metrics")
	if after := metricValue(t, body, series); after <= first {
		t.Errorf("%s did not move after more publishes: %v then %v", series, first, after)
	}
	if v := metricValue(t, body, "beat_entries"); v != 2 {
		t.Errorf("beat_entries = %v, want 2", v)
	}
	published := metricValue(t, body, series) + max(0, metricValue(t, body, `beat_publishes_total{entry="daily",task="beat.daily"}`))
	if v := metricValue(t, body, "beat_publish_lateness_seconds_count"); v != published {
		t.Errorf("beat_publish_lateness_seconds_count = %v, want the %v publishes", v, published)
	}
	if v := metricValue(t, body, `beat_publish_failures_total{entry="tick",task="beat.tick"}`); v > 0 {
		t.Errorf("publish failures counted: %v", v)
	}
	if !strings.Contains(body, "\nprocess_resident_memory_bytes ") || !strings.Contains(body, "\ngo_goroutines ") {
		t.Errorf("no Go/process metrics:\n%s", body)
	}
	if code := p.stop(t); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
	if _, err := http.Get(base + "/metrics"); err == nil {
		t.Errorf("metrics still served after beat stopped")
	}
}

// TestMetricsAddrInUse: a metrics address that cannot be listened on is logged as an ERROR and
// beat goes on scheduling without metrics.
func TestMetricsAddrInUse(t *testing.T) {
	t.Parallel()
	s := newSetup(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := s.writeConfig(t, map[string]any{"tick": map[string]any{"task": "beat.tick", "schedule": 0.5}}, nil)
	p := start(t, "beat", beatBin, "--config", cfg, "--metrics-addr", ln.Addr().String())
	p.waitLog(t, 20*time.Second, "beat: no metrics: metrics: listening on \""+ln.Addr().String())
	p.waitLog(t, 20*time.Second, "Sending due task tick (beat.tick)")
	if code := p.stop(t); code != 0 {
		t.Errorf("exit %d, want 0", code)
	}
}

// TestMetricsAddrFlag: the flag wins over BEAT_METRICS_ADDR, which wins over the default; empty
// turns the server off; a malformed address is refused at start, naming the flag.
func TestMetricsAddrFlag(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string // "" with wantErr: refused
		err  bool
	}{
		{"default", nil, nil, defaultMetricsAddr, false},
		{"env", nil, map[string]string{"BEAT_METRICS_ADDR": "0.0.0.0:9100"}, "0.0.0.0:9100", false},
		{"env empty: off", nil, map[string]string{"BEAT_METRICS_ADDR": ""}, "", false},
		{"flag over env", []string{"--metrics-addr", ":9200"}, map[string]string{"BEAT_METRICS_ADDR": "0.0.0.0:9100"}, ":9200", false},
		{"flag empty: off", []string{"--metrics-addr", ""}, nil, "", false},
		{"flag malformed", []string{"--metrics-addr", "nonsense"}, nil, "", true},
		{"env malformed", nil, map[string]string{"BEAT_METRICS_ADDR": "127.0.0.1"}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out strings.Builder
			f, err := parseFlags(tc.args, &out, func(k string) (string, bool) { v, ok := tc.env[k]; return v, ok })
			if tc.err {
				if err == nil || !strings.Contains(out.String(), "--metrics-addr") {
					t.Errorf("parse %v env %v: err %v, output %q; want an error naming --metrics-addr", tc.args, tc.env, err, out.String())
				}
				return
			}
			if err != nil || f.metricsAddr != tc.want {
				t.Errorf("parse %v env %v = %q, %v; want %q", tc.args, tc.env, f.metricsAddr, err, tc.want)
			}
		})
	}
}

// TestMalformedMetricsAddrExits: beat refuses a malformed address with exit 2.
func TestMalformedMetricsAddrExits(t *testing.T) {
	t.Parallel()
	out, err := command(beatBin, "--metrics-addr", "nonsense", "--list").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "--metrics-addr") {
		t.Errorf("exit %v, output %q; want 2 naming --metrics-addr", err, out)
	}
}
