package serve

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// The server's time for a job whose training loss has 100k points: the job
// page (every metric read, summarized, downsampled and drawn) and the
// metrics API for that one metric. Target: under 200 ms each.
func benchRoute(b *testing.B, path func(f *fixture) string) {
	f := newFixture(b, 100_000)
	s := f.server(b, Options{})
	target := path(f)
	b.ResetTimer()
	for range b.N {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, target, nil))
		if rec.Code != http.StatusOK {
			b.Fatalf("%s: %d", target, rec.Code)
		}
		b.SetBytes(int64(rec.Body.Len()))
	}
}

func BenchmarkJobPage100k(b *testing.B) {
	benchRoute(b, func(f *fixture) string { return fmt.Sprintf("/jobs/%d", f.done) })
}

func BenchmarkMetricsAPI100k(b *testing.B) {
	benchRoute(b, func(f *fixture) string { return fmt.Sprintf("/api/jobs/%d/metrics?name=step_loss", f.done) })
}

func BenchmarkJobAPI100k(b *testing.B) {
	benchRoute(b, func(f *fixture) string { return fmt.Sprintf("/api/jobs/%d", f.done) })
}
