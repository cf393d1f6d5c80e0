package serve

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/history"
	"github.com/dl4img/dl4img/internal/pgtest"
)

func get(t *testing.T, h http.Handler, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	// Every answer, errors included, carries the security headers.
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(rec.Header().Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("GET %s: security headers missing: %v", target, rec.Header())
	}
	return rec
}

func TestPages(t *testing.T) {
	f := newFixture(t, 120)
	s := f.server(t, Options{})
	tests := []struct {
		name, target string
		status       int
		want         []string
		not          []string
	}{
		{"jobs", "/", 200, []string{"baseline", "wider", "diverged", "running", `data-refresh="1"`, "st-failed",
			"epoch 6/10 150/300", "val_acc 0.951"}, nil},
		{"jobs by state", "/?state=failed", 200, []string{"diverged"}, []string{"baseline", "wider"}},
		{"jobs by kind", "/?kind=segment", 200, []string{"no jobs match the filter"}, []string{"baseline"}},
		{"jobs bad state", "/?state=bogus", 400, []string{"want one of"}, nil},
		{"finished job", fmt.Sprintf("/jobs/%d", f.done), 200, []string{
			`<svg class="plot"`, `data-metric="val_loss"`, `data-metric="loss"`, `class="logtoggle"`, "test_acc",
			fmt.Sprintf(`src="/jobs/%d/artifacts/%d"`, f.done, f.png), "<th>label</th>", "submission.csv",
			"ckpt-1200", "learning_rate", "go:ops_sequential", `class="dag"`, `data-active="0"`}, nil},
		{"failed job", fmt.Sprintf("/jobs/%d", f.failed), 200, []string{"diverged at step 17 (epoch 1): loss is Inf", "queued again; learning_rate 50 → 5", "st-failed", "st-cancelled",
			"upstream task train failed"}, nil},
		{"running job", fmt.Sprintf("/jobs/%d", f.run), 200, []string{`data-active="1"`, "epoch 6/10 150/300", "st-running"}, nil},
		{"unknown job", "/jobs/999", 404, []string{"job 999"}, nil},
		{"malformed job", "/jobs/abc", 400, []string{"not a positive integer"}, nil},
		{"negative job", "/jobs/-3", 400, nil, nil},
		{"compare", fmt.Sprintf("/compare?jobs=%d,%d", f.done, f.done2), 200, []string{`class="differ"`, "hidden",
			"job " + fmt.Sprint(f.done2) + " train val_loss", `stroke-dasharray`}, nil},
		{"compare from list form", fmt.Sprintf("/compare?jobs=%d&jobs=%d", f.done, f.failed), 200, []string{"diverged"}, nil},
		{"compare nothing", "/compare", 400, nil, nil},
		{"compare malformed", "/compare?jobs=1,x", 400, nil, nil},
		{"compare unknown", fmt.Sprintf("/compare?jobs=%d,999", f.done), 404, nil, nil},
		{"no such page", "/nope", 404, nil, nil},
		{"script", "/static/app.js", 200, []string{"getJSON"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := get(t, s, tc.target)
			body := rec.Body.String()
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %.300s", rec.Code, tc.status, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body lacks %q", w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(body, w) {
					t.Errorf("body has %q", w)
				}
			}
			if strings.HasPrefix(tc.target, "/static/") {
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("content type %q", ct)
			}
			// CSP: no inline script or style anywhere.
			for _, bad := range []string{"<script>", "style=", "<style", " onclick", "onload="} {
				if strings.Contains(body, bad) {
					t.Errorf("page has %q, which the CSP blocks", bad)
				}
			}
		})
	}
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder, status int) T {
	t.Helper()
	var v T
	if rec.Code != status {
		t.Fatalf("status %d, want %d: %s", rec.Code, status, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("content type %q", ct)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	return v
}

// TestMain stops the PostgreSQL server that TestAPI starts.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// TestAPI runs on both databases: the UI's read queries are the store's
// own, bound per dialect.
func TestAPI(t *testing.T) {
	for _, db := range []struct {
		name string
		dsn  func(testing.TB) string
	}{
		{"sqlite", func(testing.TB) string { return "" }},
		{"postgres", func(tb testing.TB) string { return pgtest.NewDB(tb) }},
	} {
		t.Run(db.name, func(t *testing.T) { testAPI(t, newFixtureOn(t, 120, db.dsn(t))) })
	}
}

func testAPI(t *testing.T, f *fixture) {
	s := f.server(t, Options{})

	list := decode[JobList](t, get(t, s, "/api/jobs"), 200)
	if len(list.Jobs) != 4 || !list.Running || len(list.Kinds) != 1 {
		t.Fatalf("jobs: %+v", list)
	}
	byID := map[int64]JobRow{}
	for _, j := range list.Jobs {
		byID[j.ID] = j
	}
	if r := byID[f.run]; r.State != "running" || r.Progress == nil || r.Progress.Done != 150 || r.Progress.Task != "train" {
		t.Errorf("running job row: %+v", r)
	}
	if h := byID[f.done].Headline; h == nil || h.Name != "val_acc" || math.Abs(float64(h.Best)-(0.97-0.6*math.Exp(-3.5))) > 1e-9 {
		t.Errorf("headline: %+v", h)
	}
	if byID[f.failed].State != "failed" || byID[f.done].FinishedAt == "" {
		t.Errorf("states: %+v", list.Jobs)
	}
	if l := decode[JobList](t, get(t, s, "/api/jobs?state=succeeded"), 200); len(l.Jobs) != 2 || l.Running {
		t.Errorf("succeeded filter: %+v", l)
	}
	decode[map[string]string](t, get(t, s, "/api/jobs?state=nope"), 400)

	d := decode[JobDetail](t, get(t, s, fmt.Sprintf("/api/jobs/%d", f.done)), 200)
	if len(d.Tasks) != 4 || len(d.Artifacts) != 4 || len(d.Checkpoints) != 1 || d.Tasks[1].Deps[0] != "generate" {
		t.Fatalf("detail: %+v", d)
	}
	types := map[int64]string{}
	for _, a := range d.Artifacts {
		types[a.ID] = a.Type
	}
	if types[f.png] != "image" || types[f.csv] != "csv" || types[f.blob] != "file" {
		t.Errorf("artifact types %v", types)
	}
	fd := decode[JobDetail](t, get(t, s, fmt.Sprintf("/api/jobs/%d", f.failed)), 200)
	if fd.Tasks[1].Error == "" || fd.Tasks[1].State != "failed" {
		t.Errorf("failed task: %+v", fd.Tasks[1])
	}
	if len(fd.Retries) != 1 || fd.Retries[0].Describe() != "learning_rate 50 → 5" || len(fd.Retries[0].Tasks) != 3 {
		t.Errorf("retries %+v", fd.Retries)
	}
	// The infinite loss is null, not a broken document.
	for _, m := range fd.Metrics {
		if m.Name == "loss" && !math.IsNaN(float64(m.Last)) && m.Last != 0 {
			t.Errorf("infinite last value came back as %v", m.Last)
		}
	}
	decode[map[string]string](t, get(t, s, "/api/jobs/999"), 404)
	decode[map[string]string](t, get(t, s, "/api/jobs/x"), 400)

	m := decode[MetricsResponse](t, get(t, s, fmt.Sprintf("/api/jobs/%d/metrics?name=val_loss", f.done)), 200)
	if len(m.Series) != 1 || m.Series[0].Count != 12 || len(m.Series[0].Points) != 12 || m.Series[0].X != "step" {
		t.Fatalf("metrics: %+v", m)
	}
	all := decode[MetricsResponse](t, get(t, s, fmt.Sprintf("/api/jobs/%d/metrics?points=10", f.done)), 200)
	if len(all.Series) != 6 { // step_loss, loss, val_loss, acc, val_acc, test_acc
		t.Fatalf("all metrics: %d series", len(all.Series))
	}
	for _, sr := range all.Series {
		if len(sr.Points) > 10 {
			t.Errorf("%s: %d points, asked for 10", sr.Name, len(sr.Points))
		}
	}
	decode[map[string]string](t, get(t, s, fmt.Sprintf("/api/jobs/%d/metrics?name=nope", f.done)), 404)
	decode[map[string]string](t, get(t, s, fmt.Sprintf("/api/jobs/%d/metrics?points=2", f.done)), 400)
	decode[map[string]string](t, get(t, s, "/api/jobs/999/metrics"), 404)

	cmp := decode[history.Comparison](t, get(t, s, fmt.Sprintf("/api/compare?jobs=%d,%d", f.done, f.done2)), 200)
	if !cmp.Differ["hidden"] || cmp.Differ["epochs"] || len(cmp.Metrics["train/val_loss"]) != 2 {
		t.Errorf("compare: %+v", cmp)
	}
	decode[map[string]string](t, get(t, s, "/api/compare?jobs=0"), 400)
	decode[map[string]string](t, get(t, s, "/api/compare?jobs=1,2,3,4,5,6,7,8,9,10,11,12,13"), 400)
}

func TestArtifacts(t *testing.T) {
	f := newFixture(t, 120)
	s := f.server(t, Options{})
	rec := get(t, s, fmt.Sprintf("/jobs/%d/artifacts/%d", f.done, f.png))
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), f.pngBytes) || rec.Header().Get("Content-Type") != "image/png" {
		t.Fatalf("png: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	rec = get(t, s, fmt.Sprintf("/jobs/%d/artifacts/%d", f.done, f.csv))
	if rec.Code != 200 || !strings.HasPrefix(rec.Body.String(), "id,label\n") ||
		!strings.HasPrefix(rec.Header().Get("Content-Disposition"), "attachment") {
		t.Fatalf("csv: %d %v", rec.Code, rec.Header())
	}
	rec = get(t, s, fmt.Sprintf("/jobs/%d/artifacts/%d", f.done, f.blob))
	if rec.Header().Get("Content-Type") != "application/octet-stream" {
		t.Errorf("binary served as %q", rec.Header().Get("Content-Type"))
	}

	// Everything below must be refused without serving a byte of the file.
	refused := []string{
		"/artifacts/../../etc/passwd",
		"/artifacts/..%2f..%2fetc%2fpasswd",
		fmt.Sprintf("/jobs/%d/artifacts/../../../etc/passwd", f.done),
		fmt.Sprintf("/jobs/%d/artifacts/..%%2f..%%2f..%%2fetc%%2fpasswd", f.done),
		fmt.Sprintf("/jobs/%d/artifacts/%%2e%%2e%%2f%%2e%%2e%%2fetc%%2fpasswd", f.done),
		fmt.Sprintf("/jobs/%d/artifacts/%%252e%%252e%%252fetc%%252fpasswd", f.done),
		fmt.Sprintf("/jobs/%d/artifacts/%s", f.done, strings.ReplaceAll(f.outside, "/", "%2f")),
		fmt.Sprintf("/jobs/%d/artifacts/%d", f.done, f.symlink),   // symlink to a file outside the workdir
		fmt.Sprintf("/jobs/%d/artifacts/%d", f.done, f.failedArt), // another job's artifact
		fmt.Sprintf("/jobs/%d/artifacts/%d", f.failed, f.png),     // ... either way round
		fmt.Sprintf("/jobs/%d/artifacts/%d", f.done, 9999),        // no such artifact
		fmt.Sprintf("/jobs/%d/artifacts/-1", f.done),              // malformed
		fmt.Sprintf("/jobs/%d/artifacts/%d?path=/etc/passwd", f.done, f.symlink),
		"/static/../../../etc/passwd",
		"/static/%2e%2e/%2e%2e/etc/passwd",
	}
	for _, target := range refused {
		rec := get(t, s, target)
		body := rec.Body.String()
		if rec.Code == 200 || strings.Contains(body, "root:x:0") {
			t.Errorf("GET %s: %d %.200q", target, rec.Code, body)
		}
	}
	// The job page offers the symlinked artifact but shows no preview or
	// image content of it: only the store's record.
	page := get(t, s, fmt.Sprintf("/jobs/%d", f.done)).Body.String()
	if strings.Contains(page, "root:x:0") || strings.Contains(page, fmt.Sprintf("artifacts/%d", f.symlink)) ||
		!strings.Contains(page, "evil.png</span> <span class=\"empty\">(file not available)") {
		t.Error("job page links or shows the symlinked artifact")
	}
}

func TestReadOnly(t *testing.T) {
	f := newFixture(t, 12)
	s := f.server(t, Options{})
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, httptest.NewRequest(m, fmt.Sprintf("/api/jobs/%d", f.done), strings.NewReader("{}")))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d", m, rec.Code)
		}
	}
	// The store itself refuses writes through a read-only handle.
	if err := f.st.SetProgress(context.Background(), 1, "x", 1, 2); err == nil {
		t.Error("read-only store accepted a write")
	}
}

func TestToken(t *testing.T) {
	f := newFixture(t, 12)
	const tok = "s3cret-token-value"
	var logs bytes.Buffer
	s := f.server(t, Options{Token: tok, Log: log.New(&logs, "", 0)})

	if rec := get(t, s, "/"); rec.Code != 401 {
		t.Errorf("no token: %d", rec.Code)
	}
	if rec := get(t, s, "/api/jobs"); rec.Code != 401 || !strings.Contains(rec.Body.String(), "token") {
		t.Errorf("no token (API): %d %s", rec.Code, rec.Body)
	}
	if rec := get(t, s, "/?token=wrong"); rec.Code != 401 {
		t.Errorf("wrong token: %d", rec.Code)
	}
	if rec := get(t, s, "/api/jobs", "Authorization", "Bearer wrong"); rec.Code != 401 {
		t.Errorf("wrong bearer: %d", rec.Code)
	}
	rec := get(t, s, "/?state=failed&token="+tok)
	if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/?state=failed" {
		t.Fatalf("token in URL: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	cookies := rec.Result().Cookies()
	if len(cookies) != 1 || !cookies[0].HttpOnly || cookies[0].Value != tok {
		t.Fatalf("cookie: %+v", cookies)
	}
	if rec := get(t, s, "/?state=failed", "Cookie", cookies[0].String()); rec.Code != 200 || !strings.Contains(rec.Body.String(), "diverged") {
		t.Errorf("with cookie: %d", rec.Code)
	}
	if rec := get(t, s, "/api/jobs", "Authorization", "Bearer "+tok); rec.Code != 200 {
		t.Errorf("bearer: %d", rec.Code)
	}
	if strings.Contains(logs.String(), tok) || !strings.Contains(logs.String(), "GET / 303") {
		t.Errorf("log:\n%s", logs.String())
	}
}

func TestListen(t *testing.T) {
	tests := []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:0", "", true},
		{"localhost:0", "", true},
		{"0.0.0.0:0", "", false},
		{":0", "", false},
		{"0.0.0.0:0", "t", true},
		{"127.0.0.1", "", false}, // no port
		{"nonsense", "t", false}, // not host:port
		{"127.0.0.1:99999", "", false},
	}
	for _, tc := range tests {
		l, err := Listen(tc.addr, tc.token)
		if (err == nil) != tc.ok {
			t.Errorf("Listen(%q, %q): %v", tc.addr, tc.token, err)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("error is not one line: %q", err)
		}
		if l != nil {
			l.Close()
		}
	}
}

func TestEnvelope(t *testing.T) {
	f := newFixture(t, 1200)
	s := f.server(t, Options{})
	// step_loss has 1200 points with a spike of 3 at step 480: 40 buckets
	// keep the spike, the range, and x in order.
	m := decode[MetricsResponse](t, get(t, s, fmt.Sprintf("/api/jobs/%d/metrics?name=step_loss&points=80", f.done)), 200)
	pts := m.Series[0].Points
	if m.Series[0].Count != 1200 || len(pts) > 80 || len(pts) < 40 {
		t.Fatalf("%d points of %d", len(pts), m.Series[0].Count)
	}
	top, low := math.Inf(-1), math.Inf(1)
	for i, p := range pts {
		top, low = math.Max(top, p[1]), math.Min(low, p[1])
		if i > 0 && p[0] < pts[i-1][0] {
			t.Fatalf("x decreases at %d", i)
		}
	}
	want := decode[JobDetail](t, get(t, s, fmt.Sprintf("/api/jobs/%d", f.done)), 200)
	for _, sum := range want.Metrics {
		if sum.Name == "step_loss" && (float64(sum.Best) != low || sum.Last == 0 || sum.Step != 1200) {
			t.Errorf("summary %+v, envelope low %v", sum, low)
		}
	}
	if top != 3 {
		t.Errorf("spike lost: top %v", top)
	}
	// A short series comes back whole.
	m = decode[MetricsResponse](t, get(t, s, fmt.Sprintf("/api/jobs/%d/metrics?name=val_loss&points=80", f.done)), 200)
	if len(m.Series[0].Points) != 12 {
		t.Errorf("val_loss: %d points", len(m.Series[0].Points))
	}
}

func TestTicks(t *testing.T) {
	tests := []struct {
		lo, hi float64
		want   string
	}{
		{0, 1, "[0 0.2 0.4 0.6 0.8 1]"},
		{0.1, 0.35, "[0.1 0.15 0.2 0.25 0.3 0.35]"},
		{0, 1200, "[0 250 500 750 1000]"},
	}
	for _, tc := range tests {
		var got []string
		for _, v := range ticks(tc.lo, tc.hi, 5) {
			got = append(got, fmtTick(v))
		}
		if s := fmt.Sprint(got); s != tc.want {
			t.Errorf("ticks(%g, %g) = %s, want %s", tc.lo, tc.hi, s, tc.want)
		}
	}
	if n := len(logTicks(-3, 1)); n < 2 || n > 8 {
		t.Errorf("log ticks over 4 decades: %d", n)
	}
}
