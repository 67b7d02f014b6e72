package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/forumads/forumads/internal/testdb"
	"github.com/forumads/forumads/internal/testenv"
)

// TestMain fails the run if a test leaves goroutines behind.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func configFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "celeryconfig.yaml")
	body := "broker_url: " + testenv.AMQPURL() + "\nresult_backend: " + testenv.RedisURL() + "\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// start runs the program in-process until the test ends; it returns the base URL.
func start(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	addr := testenv.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	logs := &testenv.LogBuffer{}
	done := make(chan int, 1)
	getenv := func(k string) string { return env[k] }
	go func() { done <- run(ctx, append(args, "--addr", addr, "--config", configFile(t)), getenv, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("web exited %d after shutdown", code)
			}
		case <-time.After(30 * time.Second):
			t.Errorf("web did not shut down")
		}
	})
	base := "http://" + addr
	var lastErr error
	err := testenv.Poll(20*time.Second, func() (bool, error) {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			return true, nil
		}
		lastErr = err
		select {
		case code := <-done:
			return false, fmt.Errorf("web exited %d: %s", code, logs.String())
		default:
			return false, nil
		}
	})
	if errors.Is(err, testenv.ErrTimeout) {
		t.Fatalf("web did not answer /healthz: %v", lastErr)
	} else if err != nil {
		t.Fatal(err)
	}
	return base
}

func get(t *testing.T, url string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServingProgram(t *testing.T) {
	t.Parallel()
	env := map[string]string{"REDIS_URL": testenv.RedisURL(), "ADS_KEY_PREFIX": "t:" + testenv.Suffix() + ":", "WEB_SECRET": "a-test-secret-of-32-bytes-length"}
	base := start(t, env, "--api", "serving")
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	if code, body := get(t, base+"/v1/ads?forum=cars&placement=sidebar&count=2"); code != 200 || !strings.Contains(body, `"ads"`) {
		t.Errorf("/v1/ads = %d %s", code, body)
	}
	if code, body := get(t, base+"/v1/ads?forum=cars&count=999999999999"); code != 400 || !strings.Contains(body, `"error"`) {
		t.Errorf("a huge count = %d %s, want a 400 JSON error", code, body)
	}
	if code, _ := get(t, base+"/embed.js"); code != 200 {
		t.Errorf("/embed.js = %d", code)
	}
	code, body := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, `http_request_duration_seconds_count{code="2xx",method="GET",route="/v1/ads"}`) {
		t.Errorf("/metrics = %d, lacks the /v1/ads latency:\n%.3000s", code, body)
	}
}

func TestDataProgram(t *testing.T) {
	t.Parallel()
	pg := testdb.Postgres(t)
	env := map[string]string{"REDIS_URL": testenv.RedisURL(), "DATABASE_URL": pg.URL, "DATA_API_TOKENS": "tok-1", "ADS_KEY_PREFIX": "t:" + testenv.Suffix() + ":"}
	base := start(t, env, "--api", "data")
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	if code, _ := get(t, base+"/v1/advertisers"); code != 401 {
		t.Errorf("/v1/advertisers without a token = %d, want 401", code)
	}
	if code, body := get(t, base+"/v1/advertisers", "Authorization", "Bearer tok-1"); code != 200 || !strings.Contains(body, `"items"`) {
		t.Errorf("/v1/advertisers = %d %s", code, body)
	}
	if code, _ := get(t, base+"/dashboard"); code != 200 {
		t.Errorf("/dashboard = %d", code)
	}
}

func TestBadAPIExits2(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if code := run(context.Background(), []string{"--api", "both", "--config", configFile(t)}, func(string) string { return "" }, &out); code != 2 {
		t.Fatalf("--api both: exit %d, want 2 (%s)", code, out.String())
	}
	if !strings.Contains(out.String(), "serving or data") {
		t.Fatalf("the error does not say what --api takes: %s", out.String())
	}
}
