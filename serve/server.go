// Package serve is `dl4img serve`: a read-only web UI over the history
// (jobs, live progress, curves, comparisons, artifacts). Pages are rendered
// on the server with html/template; charts are SVG drawn in Go; one small
// embedded script adds hover values, series toggles, log scale and live
// refresh through the JSON API. Nothing is fetched from the network.
package serve

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dl4img/dl4img/store"
)

// Store is what the server reads. *store.DB satisfies it for any database
// the store opens.
type Store interface {
	Jobs(ctx context.Context) ([]store.Job, error)
	Job(ctx context.Context, id int64) (*store.Job, error)
	Tasks(ctx context.Context, jobID int64) ([]store.Task, error)
	Checkpoints(ctx context.Context, taskID int64) ([]store.Checkpoint, error)
	JobMetricRanges(ctx context.Context, jobID int64, name string) ([]store.MetricRange, error)
	MetricPoints(ctx context.Context, taskID int64, name string) ([]store.Metric, error)
	MetricBuckets(ctx context.Context, taskID int64, name string, byEpoch bool, lo, hi, n int) ([]store.MetricBucket, error)
	LastMetric(ctx context.Context, taskID int64, name string) (store.Metric, error)
	JobArtifactRecords(ctx context.Context, jobID int64) ([]store.ArtifactRecord, error)
	ArtifactByID(ctx context.Context, id int64) (*store.ArtifactRecord, error)
	Sweeps(ctx context.Context) ([]store.Sweep, error)
	Sweep(ctx context.Context, id int64) (*store.Sweep, error)
	SweepPoints(ctx context.Context, sweepID int64) ([]store.SweepPoint, error)
	JobSweeps(ctx context.Context) (map[int64]store.PointRef, error)
	JobRetries(ctx context.Context, jobID int64) ([]store.Retry, error)
}

// Options configure a Server.
type Options struct {
	// Root is the workdir root (absolute): the store records job folders and
	// artifacts relative to it (jobs.Resolve).
	Root string
	// Token, when set, is required on every request (header, or a cookie
	// set from ?token= once).
	Token string
	// Headline names a job kind's headline metric ("" when it has none).
	Headline func(kind string) string
	// Log receives one line per request (method, path, status, time); nil
	// logs nothing. Query strings are never logged: they may hold the token.
	Log *log.Logger
	// Now is the clock for durations of running jobs (default time.Now).
	Now func() time.Time
}

// Server serves the UI. It holds no mutable state.
type Server struct {
	st    Store
	opt   Options
	pages map[string]*template.Template
	mux   *http.ServeMux
}

//go:embed ui
var uiFS embed.FS

// New builds a server over st.
func New(st Store, opt Options) (*Server, error) {
	if opt.Headline == nil {
		opt.Headline = func(string) string { return "" }
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	s := &Server{st: st, opt: opt, pages: map[string]*template.Template{}, mux: http.NewServeMux()}
	for _, p := range []string{"jobs", "job", "compare", "sweeps", "sweep", "error"} {
		t, err := template.New("base.html").Funcs(funcs).ParseFS(uiFS, "ui/base.html", "ui/charts.html", "ui/"+p+".html")
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", p, err)
		}
		s.pages[p] = t
	}
	static, err := fs.Sub(uiFS, "ui/static")
	if err != nil {
		return nil, err
	}
	files := http.StripPrefix("/static/", http.FileServerFS(static))
	s.mux.HandleFunc("GET /static/", func(w http.ResponseWriter, r *http.Request) {
		// The embedded files only: no listing, and a name fs.FS refuses
		// (not UTF-8, "..") is a 404, not FileServer's 500.
		name := strings.TrimPrefix(r.URL.Path, "/static/")
		if name == "" || !fs.ValidPath(name) {
			s.fail(w, r, httpError{http.StatusNotFound, "no such file"})
			return
		}
		files.ServeHTTP(w, r)
	})
	s.mux.HandleFunc("GET /{$}", s.jobsPage)
	s.mux.HandleFunc("GET /jobs/{id}", s.jobPage)
	s.mux.HandleFunc("GET /jobs/{id}/artifacts/{aid}", s.artifact)
	s.mux.HandleFunc("GET /compare", s.comparePage)
	s.mux.HandleFunc("GET /api/jobs", s.apiJobs)
	s.mux.HandleFunc("GET /api/jobs/{id}", s.apiJob)
	s.mux.HandleFunc("GET /api/jobs/{id}/metrics", s.apiMetrics)
	s.mux.HandleFunc("GET /api/compare", s.apiCompare)
	s.mux.HandleFunc("GET /sweeps", s.sweepsPage)
	s.mux.HandleFunc("GET /sweeps/{id}", s.sweepPage)
	s.mux.HandleFunc("GET /api/sweeps", s.apiSweeps)
	s.mux.HandleFunc("GET /api/sweeps/{id}", s.apiSweep)
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, r, httpError{http.StatusNotFound, "no such page"})
	})
	return s, nil
}

// csp allows only the server's own script, styles and images: the pages
// have no inline script or style, and artifacts never run as pages.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const tokenCookie = "dl4img_token"

// ServeHTTP applies the headers, the token check and the method check, then
// routes. Every response, errors included, gets the security headers.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	h := rec.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	switch {
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		// Read-only: nothing accepts a body or changes anything.
		h.Set("Allow", "GET, HEAD")
		s.fail(rec, r, httpError{http.StatusMethodNotAllowed, "read-only: only GET and HEAD"})
	case !s.authorized(rec, r):
	default:
		s.mux.ServeHTTP(rec, r)
	}
	if s.opt.Log != nil {
		s.opt.Log.Printf("%s %s %d %s", r.Method, r.URL.EscapedPath(), rec.status, time.Since(start).Round(time.Microsecond))
	}
}

// authorized checks the token; it answers the request itself when it is
// not. ?token= sets the cookie and redirects to the same URL without it,
// so the token leaves the address bar and the history.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request) bool {
	if s.opt.Token == "" {
		return true
	}
	if q := r.URL.Query(); q.Has("token") {
		if !s.tokenOK(q.Get("token")) {
			s.fail(w, r, httpError{http.StatusUnauthorized, "wrong token"})
			return false
		}
		http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: s.opt.Token, Path: "/", HttpOnly: true,
			SameSite: http.SameSiteStrictMode})
		q.Del("token")
		u := url.URL{Path: r.URL.Path, RawQuery: q.Encode()}
		http.Redirect(w, r, u.String(), http.StatusSeeOther)
		return false
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && s.tokenOK(tok) {
		return true
	}
	if c, err := r.Cookie(tokenCookie); err == nil && s.tokenOK(c.Value) {
		return true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="dl4img"`)
	s.fail(w, r, httpError{http.StatusUnauthorized, "this server needs its token: open it once with ?token=… or send Authorization: Bearer …"})
	return false
}

func (s *Server) tokenOK(t string) bool {
	return subtle.ConstantTimeCompare([]byte(t), []byte(s.opt.Token)) == 1
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// httpError is an error with the status to answer it with.
type httpError struct {
	status int
	msg    string
}

func (e httpError) Error() string { return e.msg }

// fail answers with err: JSON under /api/, a page elsewhere. Errors that
// are not httpErrors are the server's own (500) and are logged, not shown
// in detail.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var he httpError
	if !errors.As(err, &he) {
		if errors.Is(err, store.ErrNotFound) {
			he = httpError{http.StatusNotFound, err.Error()}
		} else if errors.Is(err, context.Canceled) {
			return // the client went away
		} else {
			if s.opt.Log != nil {
				s.opt.Log.Printf("%s %s: %v", r.Method, r.URL.EscapedPath(), err)
			}
			he = httpError{http.StatusInternalServerError, "internal error (see the server's log)"}
		}
	}
	if strings.HasPrefix(r.URL.Path, "/api/") {
		writeJSON(w, he.status, map[string]string{"error": he.msg})
		return
	}
	s.render(w, r, he.status, "error", map[string]any{"Title": http.StatusText(he.status), "Status": he.status, "Message": he.msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.Encode(v)
}

// render executes a page into a buffer first, so that a template error
// becomes a clean 500 instead of half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	var b strings.Builder
	if err := s.pages[page].Execute(&b, data); err != nil {
		if page == "error" {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		s.fail(w, r, fmt.Errorf("render %s: %w", page, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, b.String())
}

// jobID parses the {id} path value.
func jobID(r *http.Request) (int64, error) {
	return parseID(r.PathValue("id"), "job")
}

func parseID(s, what string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, httpError{http.StatusBadRequest, fmt.Sprintf("%s id %q: not a positive integer", what, s)}
	}
	return id, nil
}

// parseIDs parses "1,2,3" (at most 12 distinct jobs).
func parseIDs(s string) ([]int64, error) {
	if strings.TrimSpace(s) == "" {
		return nil, httpError{http.StatusBadRequest, "jobs: give job ids, e.g. ?jobs=1,2"}
	}
	var ids []int64
	seen := map[int64]bool{}
	for _, f := range strings.Split(s, ",") {
		id, err := parseID(strings.TrimSpace(f), "job")
		if err != nil {
			return nil, err
		}
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	if len(ids) > maxCompare {
		return nil, httpError{http.StatusBadRequest, fmt.Sprintf("jobs: at most %d at once", maxCompare)}
	}
	return ids, nil
}

// maxCompare bounds a comparison: beyond a dozen runs the overlaid curves
// are unreadable and the colours repeat.
const maxCompare = 12

// Listen checks an address: a loopback address, or any address with a
// token. It returns the listener.
func Listen(addr, token string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--addr %q: %w", addr, err)
	}
	if !loopback(host) && token == "" {
		return nil, fmt.Errorf("--addr %s is reachable from other machines: give --token too (or bind 127.0.0.1)", addr)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--addr %s: %w", addr, err)
	}
	return l, nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Run serves on l until ctx is done, then shuts down gracefully.
func (s *Server) Run(ctx context.Context, l net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return ctx }}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	}
}
