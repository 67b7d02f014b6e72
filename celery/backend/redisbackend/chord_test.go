package redisbackend

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/protocol"
	"github.com/forumads/forumads/internal/testenv"
)

func intp(i int) *int { return &i }

// monitor runs MONITOR on a connection of its own (go-redis's Monitor is
// racy) and sends the lines it reads until ctx ends.
func monitor(t *testing.T, ctx context.Context) <-chan string {
	t.Helper()
	opts, err := redis.ParseURL(redisURL())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", opts.Addr)
	if err != nil {
		t.Fatalf("Redis is required at %s: %v", opts.Addr, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	go func() {
		<-ctx.Done()
		_ = conn.Close()
	}()
	if opts.Password != "" {
		fmt.Fprintf(conn, "AUTH %s\r\n", opts.Password)
	}
	if _, err := fmt.Fprint(conn, "MONITOR\r\n"); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(conn)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	return lines
}

// TestChordGolden replays redis_backend_chord.json: the client's SETEX of
// .s and the two header completions give exactly the Redis commands Celery
// 5.2 sent for the chord keys (MULTI/EXEC aside), and the completion returns
// the results in group order.
func TestChordGolden(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(filepath.Join(testenv.FixturesDir(t), "redis_backend_chord.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		GroupID  string   `json:"group_id"`
		Header   []string `json:"header_task_ids"`
		Commands []string `json:"redis_commands"`
	}
	if err := json.Unmarshal(data, &fx); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, line := range fx.Commands {
		cmd := line[strings.Index(line, "] ")+2:]
		if strings.Contains(cmd, `"celery-taskset-meta-`) {
			want = append(want, cmd)
		}
	}

	b, c, prefix := newBackend(t, 24*time.Hour)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	lines := monitor(t, ctx)
	// MONITOR is asynchronous: wait until it sees a first marker command.
	marker := prefix + "marker"
	for ready := false; !ready; {
		_ = c.Get(ctx, marker).Err()
		select {
		case l := <-lines:
			ready = strings.Contains(l, marker)
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
			t.Fatal("MONITOR never started")
		}
	}

	if err := b.SetChordSize(ctx, fx.GroupID, 2); err != nil {
		t.Fatal(err)
	}
	out, err := b.OnChordPartReturn(ctx, ChordPart{GroupID: fx.GroupID, TaskID: fx.Header[0], GroupIndex: intp(0),
		State: protocol.StateSuccess, Result: json.RawMessage("2")})
	if err != nil || out.Complete {
		t.Fatalf("first part: %+v, %v", out, err)
	}
	out, err = b.OnChordPartReturn(ctx, ChordPart{GroupID: fx.GroupID, TaskID: fx.Header[1], GroupIndex: intp(1),
		State: protocol.StateSuccess, Result: json.RawMessage("4")})
	if err != nil || !out.Complete || out.Err != nil {
		t.Fatalf("last part: %+v, %v", out, err)
	}
	if len(out.Results) != 2 || string(out.Results[0]) != "2" || string(out.Results[1]) != "4" {
		t.Errorf("results %s, want [2 4]", out.Results)
	}
	end := prefix + "end"
	_ = c.Get(ctx, end).Err()
	var got []string
	quotedPrefix := `"` + prefix
	for done := false; !done; {
		select {
		case l := <-lines:
			if strings.Contains(l, end) {
				done = true
				continue
			}
			cmd := l[strings.Index(l, "] ")+2:]
			if strings.Contains(cmd, quotedPrefix+"celery-taskset-meta-") {
				// go-redis sends command names in lower case, redis-py in upper.
				name, args, _ := strings.Cut(strings.ReplaceAll(cmd, quotedPrefix, `"`), " ")
				got = append(got, strings.ToUpper(name)+" "+args)
			}
		case <-ctx.Done():
			t.Fatal("MONITOR output incomplete")
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands\n got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestChordOutcomes(t *testing.T) {
	t.Parallel()
	failure := protocol.ExceptionResult(protocol.ExceptionInfo{Type: "ValueError", Message: []any{"boom"}, Module: "builtins"})
	cases := []struct {
		name     string
		size     int // 0: no .s key
		parts    []ChordPart
		complete int // index of the completing part, -1 none
		results  string
		errMsg   string
	}{
		{name: "ordered by group_index", size: 3, complete: 2, results: `[1 "b" {"c": 3}]`, parts: []ChordPart{
			{TaskID: "t2", GroupIndex: intp(2), State: "SUCCESS", Result: json.RawMessage(`{"c": 3}`)},
			{TaskID: "t0", GroupIndex: intp(0), State: "SUCCESS", Result: json.RawMessage(`1`)},
			{TaskID: "t1", GroupIndex: intp(1), State: "SUCCESS", Result: json.RawMessage(`"b"`)},
		}},
		{name: "failure", size: 2, complete: 1, errMsg: "Dependency t1 raised ValueError('boom')", parts: []ChordPart{
			{TaskID: "t0", GroupIndex: intp(0), State: "SUCCESS", Result: json.RawMessage(`1`)},
			{TaskID: "t1", GroupIndex: intp(1), State: "FAILURE", Result: failure},
		}},
		{name: "no size stored", size: 0, complete: -1, parts: []ChordPart{
			{TaskID: "t0", GroupIndex: intp(0), State: "SUCCESS", Result: json.RawMessage(`1`)},
		}},
		{name: "nil group index and null result", size: 1, complete: 0, results: `[null]`, parts: []ChordPart{
			{TaskID: "t0", State: "SUCCESS"},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, c, prefix := newBackend(t, time.Hour)
			ctx := context.Background()
			gid := newUUID()
			if tc.size > 0 {
				if err := b.SetChordSize(ctx, gid, tc.size); err != nil {
					t.Fatal(err)
				}
			}
			for i, p := range tc.parts {
				p.GroupID = gid
				out, err := b.OnChordPartReturn(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				if out.Complete != (i == tc.complete) {
					t.Fatalf("part %d: complete=%v", i, out.Complete)
				}
				if !out.Complete {
					continue
				}
				if tc.errMsg != "" {
					if out.Err == nil || out.Err.Message != tc.errMsg {
						t.Fatalf("err %v, want %q", out.Err, tc.errMsg)
					}
					if ei := out.Err.Exception(); ei.Type != "ChordError" || ei.Module != "celery.exceptions" {
						t.Errorf("exception %+v", ei)
					}
				} else {
					var parts []string
					for _, r := range out.Results {
						parts = append(parts, string(r))
					}
					if got := "[" + strings.Join(parts, " ") + "]"; got != tc.results || out.Err != nil {
						t.Errorf("results %s (err %v), want %s", got, out.Err, tc.results)
					}
				}
				n, err := c.Exists(ctx, GroupKey(prefix, gid)+".j", GroupKey(prefix, gid)+".s", GroupKey(prefix, gid)+".t").Result()
				if err != nil || n != 0 {
					t.Errorf("counter keys left: %d, %v", n, err)
				}
			}
		})
	}
}

func TestChordBadInput(t *testing.T) {
	t.Parallel()
	b, c, prefix := newBackend(t, time.Hour)
	ctx := context.Background()
	cases := map[string]ChordPart{
		"no group": {TaskID: "t", State: "SUCCESS"},
		"no task":  {GroupID: "g", State: "SUCCESS"},
		"no state": {GroupID: "g", TaskID: "t"},
	}
	for name, p := range cases {
		if _, err := b.OnChordPartReturn(ctx, p); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := b.SetChordSize(ctx, "", 1); err == nil {
		t.Error("SetChordSize accepted an empty group id")
	}
	if err := b.SetChordSize(ctx, "g", -1); err == nil {
		t.Error("SetChordSize accepted a negative size")
	}
	gid := newUUID()
	if err := c.Set(ctx, GroupKey(prefix, gid)+".s", "two", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.OnChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: "t", State: "SUCCESS"}); err == nil ||
		!strings.Contains(err.Error(), "not an integer") {
		t.Errorf("bad .s value: %v", err)
	}
}

// TestChordConcurrentCompletion: 1,000 header members finishing at once
// from many goroutines complete the chord exactly once, with every result
// in order.
func TestChordConcurrentCompletion(t *testing.T) {
	t.Parallel()
	const n = 1000
	b, _, _ := newBackend(t, time.Hour)
	ctx := context.Background()
	gid := newUUID()
	if err := b.SetChordSize(ctx, gid, n); err != nil {
		t.Fatal(err)
	}
	var completions atomic.Int32
	var final ChordOutcome
	var mu sync.Mutex
	var wg sync.WaitGroup
	jobs := make(chan int)
	errs := make(chan error, n)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out, err := b.OnChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: newUUID(), GroupIndex: intp(i),
					State: "SUCCESS", Result: json.RawMessage(strconvItoa(i))})
				if err != nil {
					errs <- err
					continue
				}
				if out.Complete {
					completions.Add(1)
					mu.Lock()
					final = out
					mu.Unlock()
				}
			}
		}()
	}
	for i := n - 1; i >= 0; i-- {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := completions.Load(); got != 1 {
		t.Fatalf("%d completions, want exactly 1", got)
	}
	if len(final.Results) != n {
		t.Fatalf("%d results", len(final.Results))
	}
	for i, r := range final.Results {
		if string(r) != strconvItoa(i) {
			t.Fatalf("result %d = %s", i, r)
		}
	}
}

func strconvItoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func FuzzDecodeChordEntry(f *testing.F) {
	f.Add([]byte(`[1, "764b3d6e", "SUCCESS", 2]`))
	f.Add([]byte(`[1, "t", "FAILURE", {"exc_type": "ValueError", "exc_message": ["boom"], "exc_module": "builtins"}]`))
	f.Add([]byte(`[1, 2, 3]`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		tid, state, res, err := DecodeChordEntry(data)
		if err != nil {
			return
		}
		// What decodes re-encodes (as the worker writes it) and decodes alike.
		enc, err := protocol.PyJSON([]any{1, tid, state, res})
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		tid2, state2, res2, err := DecodeChordEntry(enc)
		if err != nil || tid2 != tid || state2 != state || !json.Valid(res2) {
			t.Fatalf("round trip %s -> %s: %v", data, enc, err)
		}
		if e := backend.DependencyError(tid, res); e.TaskID != tid || !strings.HasPrefix(e.Message, "Dependency "+tid+" raised ") {
			t.Fatalf("DependencyError(%q) = %+v", tid, e)
		}
	})
}

func FuzzDecodeGroupMeta(f *testing.F) {
	f.Add([]byte(`{"result": [["g", null], [[["a", null], null], [["b", null], null]]]}`))
	f.Add([]byte(`{"result": [["g", null], [[["g2", null], [[["a", null], null]]]]]}`))
	f.Add([]byte(`{"result": null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ids, err := DecodeGroupMeta(data)
		if err == nil && ids == nil {
			t.Fatal("nil ids without an error")
		}
	})
}

// BenchmarkOnChordPartReturn is one header completion (one MULTI round
// trip) of a chord too large to complete during the benchmark.
func BenchmarkOnChordPartReturn(b *testing.B) {
	be, _, _ := newBackend(b, time.Hour)
	ctx := context.Background()
	gid := newUUID()
	if err := be.SetChordSize(ctx, gid, 1<<30); err != nil {
		b.Fatal(err)
	}
	i := 0
	for b.Loop() {
		i++
		if _, err := be.OnChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: strconvItoa(i), GroupIndex: &i,
			State: "SUCCESS", Result: json.RawMessage("1")}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestChordPartStoresItsResult: a part carrying its member's result meta stores it (readable as
// Store writes it) and counts the part in the same call; a SUCCESS already stored is kept; a
// meta that cannot be stored is a non-temporary StoreError and nothing is counted.
func TestChordPartStoresItsResult(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, c, prefix := newBackend(t, time.Hour)
	gid := newUUID()
	if err := b.SetChordSize(ctx, gid, 2); err != nil {
		t.Fatal(err)
	}
	first, second := newUUID(), newUUID()
	meta := protocol.ResultMeta{TaskID: first, Status: protocol.StateSuccess, Result: json.RawMessage("2"), GroupID: gid}
	out, err := b.OnChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: first, GroupIndex: intp(0),
		State: protocol.StateSuccess, Result: json.RawMessage("2"), Store: &meta})
	if err != nil || out.Complete {
		t.Fatalf("first part: %+v, %v", out, err)
	}
	got, err := b.Get(ctx, first)
	if err != nil || got.Status != protocol.StateSuccess || string(got.Result) != "2" || got.GroupID != gid || got.DateDone == nil {
		t.Fatalf("stored with the part: %+v, %v", got, err)
	}
	if ttl := c.TTL(ctx, TaskKey(prefix, first)).Val(); ttl <= 0 || ttl > time.Hour {
		t.Errorf("result TTL %v, want result_expires (1h)", ttl)
	}

	invalid := protocol.ResultMeta{TaskID: second} // no status
	_, err = b.OnChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: second, GroupIndex: intp(1),
		State: protocol.StateSuccess, Result: json.RawMessage("4"), Store: &invalid})
	var se *StoreError
	if !errors.As(err, &se) || se.Temporary() {
		t.Fatalf("an invalid meta: %v, want a non-temporary *StoreError", err)
	}
	if n := c.ZCard(ctx, GroupKey(prefix, gid)+".j").Val(); n != 1 {
		t.Fatalf("%d parts counted after the refused meta, want 1", n)
	}

	// A SUCCESS already stored (a redelivered member) is kept; the part completes the chord.
	if err := b.Store(ctx, protocol.ResultMeta{TaskID: second, Status: protocol.StateSuccess, Result: json.RawMessage("4")}); err != nil {
		t.Fatal(err)
	}
	again := protocol.ResultMeta{TaskID: second, Status: protocol.StateFailure, Result: json.RawMessage(`{"exc_type": "X", "exc_message": [], "exc_module": "builtins"}`)}
	out, err = b.OnChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: second, GroupIndex: intp(1),
		State: protocol.StateSuccess, Result: json.RawMessage("4"), Store: &again})
	if err != nil || !out.Complete || out.Err != nil || len(out.Results) != 2 {
		t.Fatalf("last part: %+v, %v", out, err)
	}
	if got, err := b.Get(ctx, second); err != nil || got.Status != protocol.StateSuccess {
		t.Errorf("a stored SUCCESS was overwritten: %+v, %v", got, err)
	}
}

// TestChordPartsGiveUpAndRetry: callers whose context ends while their part waits for a batch
// give up (or are counted anyway) without stalling the others; counting their parts again after
// that is harmless, and the chord completes exactly once with every result.
func TestChordPartsGiveUpAndRetry(t *testing.T) {
	t.Parallel()
	const n = 400
	b, _, _ := newBackend(t, time.Hour)
	ctx := context.Background()
	gid := newUUID()
	if err := b.SetChordSize(ctx, gid, n); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newUUID()
	}
	part := func(i int) ChordPart {
		return ChordPart{GroupID: gid, TaskID: ids[i], GroupIndex: intp(i), State: "SUCCESS", Result: json.RawMessage(strconvItoa(i))}
	}
	var completions atomic.Int32
	var wg sync.WaitGroup
	failed := make(chan int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx := ctx
			if i%3 == 0 { // a third of the callers give up almost at once
				c, cancel := context.WithTimeout(ctx, time.Duration(i%7)*time.Microsecond)
				defer cancel()
				pctx = c
			}
			out, err := b.OnChordPartReturn(pctx, part(i))
			if err != nil {
				failed <- i
				return
			}
			if out.Complete {
				completions.Add(1)
			}
		}()
	}
	wg.Wait()
	close(failed)
	retried := 0
	for i := range failed {
		retried++
		out, err := b.OnChordPartReturn(ctx, part(i))
		if err != nil {
			t.Fatalf("retrying part %d: %v", i, err)
		}
		if out.Complete {
			completions.Add(1)
		}
	}
	t.Logf("%d callers gave up and counted again", retried)
	if c := completions.Load(); c != 1 {
		t.Fatalf("%d completions, want exactly 1", c)
	}
}

// TestChordJoinsSavedNestedGroup: a chord whose header Celery's client saved as a GroupResult with
// a nested group (chord(group(chain(t, group(a, b))), body): the chain's group is a header member)
// completes with the nested group's results as one list, as Celery's join_native gives them; a
// failed nested member fails the chord naming it.
func TestChordJoinsSavedNestedGroup(t *testing.T) {
	t.Parallel()
	failure := protocol.ExceptionResult(protocol.ExceptionInfo{Type: "ValueError", Message: []any{"boom"}, Module: "builtins"})
	cases := []struct {
		name    string
		results []json.RawMessage // of a, b, c
		states  []string
		want    string
		errMsg  string
	}{
		{name: "nested list", results: []json.RawMessage{json.RawMessage("42"), json.RawMessage("43"), json.RawMessage(`"c"`)},
			states: []string{"SUCCESS", "SUCCESS", "SUCCESS"}, want: `[[42, 43] "c"]`},
		{name: "nested member failed", results: []json.RawMessage{json.RawMessage("42"), failure, json.RawMessage(`"c"`)},
			states: []string{"SUCCESS", "FAILURE", "SUCCESS"}, errMsg: "Dependency %s raised ValueError('boom')"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b, c, prefix := newBackend(t, time.Hour)
			gid, inner := newUUID(), newUUID()
			ids := []string{newUUID(), newUUID(), newUUID()}
			saved := fmt.Sprintf(`{"result": [["%s", null], [[["%s", null], [[["%s", null], null], [["%s", null], null]]], [["%s", null], null]]]}`,
				gid, inner, ids[0], ids[1], ids[2])
			if err := c.Set(ctx, GroupKey(prefix, gid), saved, time.Hour).Err(); err != nil {
				t.Fatal(err)
			}
			if err := b.SetChordSize(ctx, gid, 3); err != nil {
				t.Fatal(err)
			}
			var out ChordOutcome
			for i, id := range ids {
				meta := protocol.ResultMeta{TaskID: id, Status: tc.states[i], Result: tc.results[i], GroupID: gid}
				var err error
				out, err = b.OnChordPartReturn(ctx, ChordPart{GroupID: gid, TaskID: id, GroupIndex: intp(i),
					State: tc.states[i], Result: tc.results[i], Store: &meta})
				if err != nil || out.Complete != (i == 2) {
					t.Fatalf("part %d: %+v, %v", i, out, err)
				}
			}
			if tc.errMsg != "" {
				if want := fmt.Sprintf(tc.errMsg, ids[1]); out.Err == nil || out.Err.Message != want {
					t.Fatalf("err %+v, want %q", out.Err, want)
				}
				return
			}
			var parts []string
			for _, r := range out.Results {
				parts = append(parts, string(r))
			}
			if got := "[" + strings.Join(parts, " ") + "]"; got != tc.want || out.Err != nil {
				t.Errorf("results %s (err %+v), want %s", got, out.Err, tc.want)
			}
		})
	}
}

func TestDecodeGroupMetaRefusesNested(t *testing.T) {
	t.Parallel()
	for name, data := range map[string]string{
		"nested group":      `{"result": [["g", null], [[["g2", null], [[["a", null], null]]]]]}`,
		"member not a list": `{"result": [["g", null], [[["a", null], 5]]]}`,
		"too deep":          `{"result": [["g", null], ` + strings.Repeat(`[[["g", null], `, 40) + `[]` + strings.Repeat(`]]`, 40) + `]}`,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if ids, err := DecodeGroupMeta([]byte(data)); err == nil {
				t.Errorf("DecodeGroupMeta = %v, want an error", ids)
			}
		})
	}
}
