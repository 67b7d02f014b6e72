package events

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// BenchmarkSend is what an event costs the task that sends it: stamping and queueing (the
// publishing goroutine drains into a broker that keeps nothing).
func BenchmarkSend(b *testing.B) {
	d, err := NewDispatcher(&memBroker{discard: true}, Options{Hostname: "bench@x", Enabled: true})
	if err != nil {
		b.Fatal(err)
	}
	e := NewTaskSucceeded("9f631223-a828-4ab5-8755-aaf351210e9a", json.RawMessage("5"), time.Millisecond)
	b.ReportAllocs()
	for b.Loop() {
		d.Send(e)
	}
	b.StopTimer()
	if err := d.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkNewTaskReceived is building the busiest task event.
func BenchmarkNewTaskReceived(b *testing.B) {
	ti := TaskInfo{ID: "9f631223-a828-4ab5-8755-aaf351210e9a", Name: "diag.add", ArgsRepr: "(2, 3)", KwargsRepr: "{}",
		RootID: "9f631223-a828-4ab5-8755-aaf351210e9a"}
	b.ReportAllocs()
	for b.Loop() {
		_ = NewTaskReceived(ti)
	}
}

// BenchmarkEncode is writing one task-received event as Celery's JSON.
func BenchmarkEncode(b *testing.B) {
	e := NewTaskReceived(TaskInfo{ID: "9f631223-a828-4ab5-8755-aaf351210e9a", Name: "diag.add", ArgsRepr: "(2, 3)",
		KwargsRepr: "{}", RootID: "9f631223-a828-4ab5-8755-aaf351210e9a"})
	e.Hostname, e.PID, e.Clock, e.Timestamp = "celery@host", 4242, 17, 1795630316.8615823
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = e.AppendJSON(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkDecodeBody decodes the captured two-event task.multi body.
func BenchmarkDecodeBody(b *testing.B) {
	body := []byte(loadFixtures(b)["event_task_multi"].Messages[0].Body)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := DecodeBody(body); err != nil {
			b.Fatal(err)
		}
	}
}
