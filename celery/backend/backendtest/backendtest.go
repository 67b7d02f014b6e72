// Package backendtest is the conformance suite of result backends: every adapter of
// backend.Backend (memorybackend, redisbackend; djangoapps/results, the django-db backend, with
// RunOptions, for what its tables cannot keep) must pass Run, and every revoke.Store
// (revoke.MemoryStore, redisrevoke) must pass RunRevokeStore, and a revoke.Follower that can lose
// its subscription (redisrevoke) RunRevokeGap too, so that the worker, the client and
// the canvas can rely on what the interfaces document whichever adapter they are given.
//
// The suite asserts outcomes, never durations, and waits for events instead of sleeping. Each
// subtest gets a fresh backend from the factory, which gives it names of its own (a Redis key
// prefix) and removes them at the subtest's cleanup.
package backendtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/forumads/forumads/celery/backend"
	"github.com/forumads/forumads/celery/protocol"
)

// Factory returns a fresh, empty backend for one subtest; its data is removed at t's cleanup.
type Factory func(t *testing.T) backend.Backend

// timeout bounds every call of the suite, so that a broken adapter fails instead of hanging.
const timeout = 20 * time.Second

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func success(id string, result string) protocol.ResultMeta {
	return protocol.ResultMeta{TaskID: id, Status: protocol.StateSuccess, Result: json.RawMessage(result)}
}

func failure(id, excType, msg string) protocol.ResultMeta {
	return protocol.ResultMeta{TaskID: id, Status: protocol.StateFailure,
		Result: protocol.ExceptionResult(protocol.ExceptionInfo{Type: excType, Message: []any{msg}, Module: "builtins"})}
}

// notTemporary reports whether err says that storing again cannot help (the worker's test).
func notTemporary(err error) bool {
	var tmp interface{ Temporary() bool }
	return errors.As(err, &tmp) && !tmp.Temporary()
}

// Options say what an adapter's storage cannot keep, so that the suite does not ask it to. The
// zero value runs every check.
type Options struct {
	// WithoutGroupID is for a backend whose storage has no group id: Get is not asked to return
	// the GroupID stored with a result. django-celery-results' task result table has no group_id
	// column, and Python's own django-db backend reports none either.
	WithoutGroupID bool
}

// Run runs the result backend suite against the backends newBackend returns.
func Run(t *testing.T, newBackend Factory) {
	t.Helper()
	RunOptions(t, newBackend, Options{})
}

// RunOptions is Run for a backend with the limits opts describes.
func RunOptions(t *testing.T, newBackend Factory, opts Options) {
	t.Helper()
	t.Run("Results", func(t *testing.T) { t.Parallel(); runResults(t, newBackend, opts) })
	t.Run("Wait", func(t *testing.T) { t.Parallel(); runWait(t, newBackend) })
	t.Run("Chords", func(t *testing.T) { t.Parallel(); runChords(t, newBackend) })
	t.Run("Groups", func(t *testing.T) { t.Parallel(); runGroups(t, newBackend) })
}

func runResults(t *testing.T, newBackend Factory, opts Options) {
	t.Run("StoreThenGet", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		m := success("t1", `{"n": [1, 2]}`)
		m.GroupID = "g1"
		if err := b.Store(ctx, m); err != nil {
			t.Fatal(err)
		}
		got, err := b.Get(ctx, "t1")
		if err != nil || got.Status != protocol.StateSuccess || got.TaskID != "t1" || (got.GroupID != "g1" && !opts.WithoutGroupID) {
			t.Fatalf("Get = %+v, %v", got, err)
		}
		var v struct{ N []int }
		if err := json.Unmarshal(got.Result, &v); err != nil || len(v.N) != 2 || v.N[1] != 2 {
			t.Fatalf("result %s (%v), want {\"n\": [1, 2]}", got.Result, err)
		}
		if got.DateDone == nil {
			t.Error("a ready state was stored without date_done")
		}
	})
	t.Run("UnknownIsPending", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		got, err := b.Get(ctx, "never-stored")
		if err != nil || got.Status != protocol.StatePending || got.TaskID != "never-stored" {
			t.Fatalf("Get(unknown) = %+v, %v; want PENDING with its id", got, err)
		}
	})
	t.Run("InvalidMetaIsRefused", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		for _, m := range []protocol.ResultMeta{{Status: protocol.StateSuccess}, {TaskID: "t"}} {
			err := b.Store(ctx, m)
			if !errors.Is(err, backend.ErrInvalidMeta) || !notTemporary(err) {
				t.Errorf("Store(%+v) = %v; want ErrInvalidMeta, not temporary", m, err)
			}
		}
	})
	t.Run("SuccessIsNotOverwritten", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		if err := b.Store(ctx, success("t", "1")); err != nil {
			t.Fatal(err)
		}
		for _, m := range []protocol.ResultMeta{success("t", "2"), failure("t", "ValueError", "late"),
			{TaskID: "t", Status: protocol.StateStarted}} {
			err := b.Store(ctx, m)
			if !errors.Is(err, backend.ErrAlreadySucceeded) || !notTemporary(err) {
				t.Errorf("Store(%s) over SUCCESS = %v; want ErrAlreadySucceeded, not temporary", m.Status, err)
			}
		}
		if got, err := b.Get(ctx, "t"); err != nil || got.Status != protocol.StateSuccess || string(got.Result) != "1" {
			t.Fatalf("after the refused writes Get = %+v, %v; want the first SUCCESS", got, err)
		}
	})
	t.Run("OtherStatesAreReplaced", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		for _, m := range []protocol.ResultMeta{{TaskID: "t", Status: protocol.StateStarted}, {TaskID: "t", Status: protocol.StateRetry},
			failure("t", "ValueError", "x"), success("t", "3")} {
			if err := b.Store(ctx, m); err != nil {
				t.Fatalf("Store(%s): %v", m.Status, err)
			}
			if got, err := b.Get(ctx, "t"); err != nil || got.Status != m.Status {
				t.Fatalf("Get after %s = %+v, %v", m.Status, got, err)
			}
		}
	})
	t.Run("ConcurrentStoresKeepTheFirstSuccess", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		const n = 16
		var wg sync.WaitGroup
		var mu sync.Mutex
		var won []int
		for i := range n {
			wg.Go(func() {
				err := b.Store(ctx, success("t", fmt.Sprint(i)))
				if err == nil {
					mu.Lock()
					won = append(won, i)
					mu.Unlock()
				} else if !errors.Is(err, backend.ErrAlreadySucceeded) {
					t.Errorf("Store %d: %v", i, err)
				}
			})
		}
		wg.Wait()
		got, err := b.Get(ctx, "t")
		if len(won) != 1 || err != nil || string(got.Result) != fmt.Sprint(won[0]) {
			t.Fatalf("%d stores succeeded (%v), stored %s (%v); want exactly one, the one stored", len(won), won, got.Result, err)
		}
	})
}

func runWait(t *testing.T, newBackend Factory) {
	t.Run("ReturnsAStoredResult", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		if err := b.Store(ctx, success("t", "42")); err != nil {
			t.Fatal(err)
		}
		got, err := b.Wait(ctx, "t")
		if err != nil || got.Status != protocol.StateSuccess || string(got.Result) != "42" {
			t.Fatalf("Wait = %+v, %v", got, err)
		}
	})
	for _, final := range []protocol.ResultMeta{success("t", "7"), failure("t", "ValueError", "boom"),
		{TaskID: "t", Status: protocol.StateRevoked, Result: protocol.ExceptionResult(protocol.ExceptionInfo{Type: "TaskRevokedError", Message: []any{"revoked"}, Module: "celery.exceptions"})}} {
		t.Run("ReturnsOn"+final.Status+"StoredLater", func(t *testing.T) {
			t.Parallel()
			b, ctx := newBackend(t), testCtx(t)
			type res struct {
				m   protocol.ResultMeta
				err error
			}
			done := make(chan res, 1)
			go func() {
				m, err := b.Wait(ctx, "t")
				done <- res{m, err}
			}()
			// Whether Wait is already waiting or not, every state below reaches it or the store.
			for _, m := range []protocol.ResultMeta{{TaskID: "t", Status: protocol.StateStarted}, {TaskID: "t", Status: protocol.StateRetry}, final} {
				if err := b.Store(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			r := <-done
			if r.err != nil || r.m.Status != final.Status {
				t.Fatalf("Wait = %+v, %v; want %s (not an error)", r.m, r.err, final.Status)
			}
		})
	}
	t.Run("EndsWithItsContext", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		if err := b.Store(ctx, protocol.ResultMeta{TaskID: "t", Status: protocol.StateStarted}); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		var got protocol.ResultMeta
		go func() {
			var err error
			got, err = b.Wait(wctx, "t")
			done <- err
		}()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait after cancel = %v; want context.Canceled", err)
		}
		if got.Status != protocol.StatePending && got.Status != protocol.StateStarted {
			t.Errorf("Wait returned %s; want the last state seen (PENDING or STARTED)", got.Status)
		}
	})
	t.Run("ManyWaitersOfOneTask", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		const n = 8
		errs := make(chan error, n)
		for range n {
			go func() {
				m, err := b.Wait(ctx, "t")
				if err == nil && m.Status != protocol.StateSuccess {
					err = fmt.Errorf("status %s", m.Status)
				}
				errs <- err
			}()
		}
		if err := b.Store(ctx, success("t", "1")); err != nil {
			t.Fatal(err)
		}
		for range n {
			if err := <-errs; err != nil {
				t.Fatalf("a waiter: %v", err)
			}
		}
	})
}

func intp(i int) *int { return &i }

func runChords(t *testing.T, newBackend Factory) {
	t.Run("ManyConcurrentPartsCompleteOnce", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		const n = 24
		if err := b.SetChordSize(ctx, "g", n); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		outs := make(chan backend.ChordOutcome, n)
		for _, i := range rand.Perm(n) {
			wg.Go(func() {
				id := fmt.Sprintf("m%02d", i)
				out, err := b.OnChordPartReturn(ctx, backend.ChordPart{GroupID: "g", TaskID: id, GroupIndex: intp(i),
					State: protocol.StateSuccess, Result: json.RawMessage(fmt.Sprint(i * 10))})
				if err != nil {
					t.Errorf("part %s: %v", id, err)
				}
				outs <- out
			})
		}
		wg.Wait()
		close(outs)
		var complete []backend.ChordOutcome
		for o := range outs {
			if o.Complete {
				complete = append(complete, o)
			}
		}
		if len(complete) != 1 {
			t.Fatalf("%d parts saw the chord complete; want exactly one", len(complete))
		}
		o := complete[0]
		if o.Err != nil || len(o.Results) != n {
			t.Fatalf("outcome %+v; want %d results", o, n)
		}
		for i, r := range o.Results {
			if string(r) != fmt.Sprint(i*10) {
				t.Fatalf("result %d = %s; want %d (group_index order)", i, r, i*10)
			}
		}
	})
	t.Run("RedeliveredPartIsCountedOnce", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		if err := b.SetChordSize(ctx, "g", 2); err != nil {
			t.Fatal(err)
		}
		a := backend.ChordPart{GroupID: "g", TaskID: "a", GroupIndex: intp(0), State: protocol.StateSuccess, Result: json.RawMessage("1")}
		for range 2 {
			if out, err := b.OnChordPartReturn(ctx, a); err != nil || out.Complete {
				t.Fatalf("part a = %+v, %v; want counted, not complete", out, err)
			}
		}
		out, err := b.OnChordPartReturn(ctx, backend.ChordPart{GroupID: "g", TaskID: "b", GroupIndex: intp(1), State: protocol.StateSuccess, Result: json.RawMessage("2")})
		if err != nil || !out.Complete || out.Err != nil || len(out.Results) != 2 {
			t.Fatalf("part b = %+v, %v; want the chord complete with 2 results", out, err)
		}
	})
	t.Run("FailedMemberFailsTheChord", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		if err := b.SetChordSize(ctx, "g", 2); err != nil {
			t.Fatal(err)
		}
		exc := protocol.ExceptionResult(protocol.ExceptionInfo{Type: "ValueError", Message: []any{"boom"}, Module: "builtins"})
		if _, err := b.OnChordPartReturn(ctx, backend.ChordPart{GroupID: "g", TaskID: "bad", GroupIndex: intp(1), State: protocol.StateFailure, Result: exc}); err != nil {
			t.Fatal(err)
		}
		out, err := b.OnChordPartReturn(ctx, backend.ChordPart{GroupID: "g", TaskID: "ok", GroupIndex: intp(0), State: protocol.StateSuccess, Result: json.RawMessage("1")})
		if err != nil || !out.Complete || out.Err == nil {
			t.Fatalf("outcome %+v, %v; want complete with a ChordError", out, err)
		}
		if out.Err.TaskID != "bad" || out.Err.Message != "Dependency bad raised ValueError('boom')" {
			t.Errorf("chord error %+v; want Dependency bad raised ValueError('boom')", out.Err)
		}
		if ei := out.Err.Exception(); ei.Type != "ChordError" || ei.Module != "celery.exceptions" {
			t.Errorf("exception %+v", ei)
		}
	})
	t.Run("PartStoresItsResultAndKeepsASuccess", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		if err := b.SetChordSize(ctx, "g", 3); err != nil {
			t.Fatal(err)
		}
		m := success("a", "5")
		if _, err := b.OnChordPartReturn(ctx, backend.ChordPart{GroupID: "g", TaskID: "a", State: protocol.StateSuccess, Result: m.Result, Store: &m}); err != nil {
			t.Fatal(err)
		}
		if got, err := b.Get(ctx, "a"); err != nil || got.Status != protocol.StateSuccess || string(got.Result) != "5" {
			t.Fatalf("the part's result: %+v, %v", got, err)
		}
		// A redelivered member that fails now keeps its first SUCCESS, and is still counted.
		f := failure("a", "ValueError", "again")
		if _, err := b.OnChordPartReturn(ctx, backend.ChordPart{GroupID: "g", TaskID: "a", State: protocol.StateFailure, Result: f.Result, Store: &f}); err != nil {
			t.Fatalf("a stored SUCCESS must not make the part an error: %v", err)
		}
		if got, err := b.Get(ctx, "a"); err != nil || got.Status != protocol.StateSuccess {
			t.Fatalf("the part's SUCCESS was overwritten: %+v, %v", got, err)
		}
		bad := protocol.ResultMeta{Status: protocol.StateSuccess}
		if _, err := b.OnChordPartReturn(ctx, backend.ChordPart{GroupID: "g", TaskID: "c", State: protocol.StateSuccess, Store: &bad}); err == nil {
			t.Error("a part whose meta cannot be stored was counted without an error")
		}
	})
	t.Run("NoSizeNeverCompletes", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		for _, id := range []string{"a", "b"} {
			out, err := b.OnChordPartReturn(ctx, backend.ChordPart{GroupID: "g", TaskID: id, State: protocol.StateSuccess})
			if err != nil || out.Complete {
				t.Fatalf("part %s = %+v, %v; without a size nothing completes", id, out, err)
			}
		}
	})
	t.Run("CountersAreGoneAfterCompletion", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		if err := b.SetChordSize(ctx, "g", 1); err != nil {
			t.Fatal(err)
		}
		p := backend.ChordPart{GroupID: "g", TaskID: "a", State: protocol.StateSuccess, Result: json.RawMessage("1")}
		if out, err := b.OnChordPartReturn(ctx, p); err != nil || !out.Complete || string(out.Results[0]) != "1" {
			t.Fatalf("first = %+v, %v", out, err)
		}
		if out, err := b.OnChordPartReturn(ctx, p); err != nil || out.Complete {
			t.Fatalf("the part again after completion = %+v, %v; want not complete (a chord completes once)", out, err)
		}
	})
	t.Run("SavedGroupIsJoined", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		for id, v := range map[string]string{"x": `"X"`, "y": `"Y"`} {
			if err := b.Store(ctx, success(id, v)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.SaveGroup(ctx, "g", []string{"y", "x"}); err != nil {
			t.Fatal(err)
		}
		if err := b.SetChordSize(ctx, "g", 1); err != nil {
			t.Fatal(err)
		}
		out, err := b.OnChordPartReturn(ctx, backend.ChordPart{GroupID: "g", TaskID: "x", State: protocol.StateSuccess})
		if err != nil || !out.Complete || out.Err != nil || len(out.Results) != 2 || string(out.Results[0]) != `"Y"` {
			t.Fatalf("outcome %+v, %v; want the saved group's results in its order", out, err)
		}
	})
	t.Run("BadInputIsAnError", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		if err := b.SetChordSize(ctx, "", 1); err == nil {
			t.Error("SetChordSize accepted an empty group id")
		}
		if err := b.SetChordSize(ctx, "g", -1); err == nil {
			t.Error("SetChordSize accepted a negative size")
		}
		for _, p := range []backend.ChordPart{{TaskID: "a", State: "SUCCESS"}, {GroupID: "g", State: "SUCCESS"}, {GroupID: "g", TaskID: "a"}} {
			if _, err := b.OnChordPartReturn(ctx, p); err == nil {
				t.Errorf("OnChordPartReturn(%+v) accepted it", p)
			}
		}
	})
}

func runGroups(t *testing.T, newBackend Factory) {
	t.Run("SaveRestore", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		if err := b.SaveGroup(ctx, "g", []string{"b", "a", "c"}); err != nil {
			t.Fatal(err)
		}
		ids, err := b.RestoreGroup(ctx, "g")
		if err != nil || len(ids) != 3 || ids[0] != "b" || ids[1] != "a" || ids[2] != "c" {
			t.Fatalf("RestoreGroup = %q, %v; want the members in the order saved", ids, err)
		}
		if err := b.SaveGroup(ctx, "g", []string{"z"}); err != nil {
			t.Fatal(err)
		}
		if ids, err := b.RestoreGroup(ctx, "g"); err != nil || len(ids) != 1 || ids[0] != "z" {
			t.Fatalf("after saving again RestoreGroup = %q, %v", ids, err)
		}
	})
	t.Run("UnknownIsNotFound", func(t *testing.T) {
		t.Parallel()
		b, ctx := newBackend(t), testCtx(t)
		if _, err := b.RestoreGroup(ctx, "missing"); !errors.Is(err, backend.ErrGroupNotFound) {
			t.Fatalf("RestoreGroup(missing) = %v; want ErrGroupNotFound", err)
		}
		if err := b.SaveGroup(ctx, "", []string{"a"}); err == nil {
			t.Fatal("SaveGroup accepted an empty group id")
		}
	})
}
