package serve

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/internal/fuzzguard"
)

// FuzzRoutes sends GET and HEAD requests for any path and query string
// (with and without a token server) over a history of finished, failed and
// running jobs. No request panics, gets a 5xx, misses the security
// headers, or is served an artifact outside its job.
func FuzzRoutes(f *testing.F) {
	fx := newFixture(f, 300)
	for _, seed := range []string{
		"/", "/?kind=selftest&state=failed", "/jobs/1", "/jobs/3", "/jobs/1/artifacts/1", "/jobs/1/artifacts/4",
		"/compare?jobs=1,2", "/compare?jobs=1&jobs=3", "/api/jobs", "/api/jobs/1", "/api/jobs/1/metrics?name=step_loss&points=4",
		"/api/jobs/3/metrics?points=1000000", "/api/compare?jobs=1,2,3,4,5,6,7,8,9,10,11,12,13", "/static/app.js",
		"/jobs/1/artifacts/%2e%2e%2fsecret", "/api/jobs/99999999999999999999", "/api/jobs/-1/metrics?points=-5",
		"/?token=t", "/jobs/0x1", "/static/../ui/job.html", "/api/jobs/1/metrics?name=%00",
	} {
		f.Add(seed)
	}
	servers := []http.Handler{fx.server(f, Options{}), fx.server(f, Options{Token: "t"})}
	f.Fuzz(func(t *testing.T, target string) {
		defer fuzzguard.Deadline()()
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		// What net/http would not accept as a request line never reaches
		// the handler.
		req, err := http.NewRequest(http.MethodGet, "http://127.0.0.1"+target, nil)
		if err != nil || req.URL.Host != "127.0.0.1" {
			return
		}
		req.RequestURI = req.URL.RequestURI()
		for _, s := range servers {
			for _, method := range []string{http.MethodGet, http.MethodHead} {
				req.Method = method
				rec := httptest.NewRecorder()
				s.ServeHTTP(rec, req)
				if rec.Code >= 500 {
					t.Fatalf("%s %s: %d %s", method, target, rec.Code, rec.Body.String())
				}
				if rec.Header().Get("X-Content-Type-Options") != "nosniff" {
					t.Fatalf("%s %s: no security headers", method, target)
				}
				if strings.Contains(rec.Body.String(), "root:x:0:0") {
					t.Fatalf("%s %s served the file outside the workdir", method, target)
				}
			}
		}
	})
}
