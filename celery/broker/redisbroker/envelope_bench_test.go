package redisbroker

import "testing"

// BenchmarkDecodeMessage decodes the list entries Python Celery 5.2 (kombu) pushed, as a
// consumer does for every message it takes.
func BenchmarkDecodeMessage(b *testing.B) {
	var raws [][]byte
	for _, c := range loadCaptured(b) {
		if c.Kind == "list" {
			raws = append(raws, []byte(c.Raw))
		}
	}
	if len(raws) == 0 {
		b.Fatal("no captured list entries")
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := DecodeMessage(raws[i%len(raws)]); err != nil {
			b.Fatal(err)
		}
	}
}
