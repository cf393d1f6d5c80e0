package serve

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/dl4img/dl4img/jobs"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// imageTypes are shown inline. SVG is not among them: an SVG artifact is a
// document that could carry script, so it is only offered for download.
var imageTypes = map[string]string{".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
	".gif": "image/gif", ".webp": "image/webp"}

func artifactType(path string) string {
	ext := strings.ToLower(filepath.Ext(path))
	switch {
	case imageTypes[ext] != "":
		return "image"
	case ext == ".csv" || ext == ".tsv":
		return "csv"
	}
	return "file"
}

// errNoFile is every reason an artifact's file is not served; the page
// says no more than that, so probing tells nothing about the disk.
var errNoFile = httpError{http.StatusNotFound, "no such artifact file"}

// artifactFile opens the file of artifact aid of job id. The file is the
// one the store recorded, never a path from the request, and its real path
// (symlinks resolved) must lie inside the job's directory or the job's
// `out` directory (where kinds write submissions when asked to), so a
// symlink planted in the workdir cannot reach anything else.
func (s *Server) artifactFile(r *http.Request, id, aid int64) (*os.File, os.FileInfo, error) {
	a, err := s.st.ArtifactByID(r.Context(), aid)
	if err != nil {
		return nil, nil, err
	}
	if a.JobID != id {
		return nil, nil, httpError{http.StatusNotFound, fmt.Sprintf("job %d has no artifact %d", id, aid)}
	}
	j, err := s.st.Job(r.Context(), id)
	if err != nil {
		return nil, nil, err
	}
	roots := []string{jobs.Resolve(s.opt.Root, j.WorkDir)}
	var p struct {
		Out string `json:"out"`
	}
	if json.Unmarshal([]byte(j.Params), &p) == nil && p.Out != "" && filepath.IsAbs(p.Out) {
		roots = append(roots, p.Out)
	}
	real, err := filepath.EvalSymlinks(jobs.Resolve(s.opt.Root, a.Path))
	if err != nil || !within(real, roots) {
		return nil, nil, errNoFile
	}
	f, err := os.Open(real)
	if err != nil {
		return nil, nil, errNoFile
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, errNoFile
	}
	return f, fi, nil
}

// within reports whether path (already resolved) lies inside one of roots
// (resolved here).
func within(path string, roots []string) bool {
	for _, root := range roots {
		rr, err := filepath.EvalSymlinks(root)
		if err != nil {
			continue
		}
		rel, err := filepath.Rel(rr, path)
		if err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel) {
			return true
		}
	}
	return false
}

// artifact serves an artifact's file: images inline, everything else as a
// download (?download=1 forces it for images too).
func (s *Server) artifact(w http.ResponseWriter, r *http.Request) {
	id, err := jobID(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	aid, err := parseID(r.PathValue("aid"), "artifact")
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f, fi, err := s.artifactFile(r, id, aid)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer f.Close()
	name := filepath.Base(f.Name())
	ctype := imageTypes[strings.ToLower(filepath.Ext(name))]
	disp := "inline"
	if ctype == "" || r.URL.Query().Get("download") == "1" {
		disp = "attachment"
	}
	if ctype == "" {
		ctype = "application/octet-stream"
		if artifactType(name) == "csv" {
			ctype = "text/csv; charset=utf-8"
		}
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": name}))
	// ServeContent handles Range and HEAD; the name passed is empty so that
	// it does not guess a type of its own.
	http.ServeContent(w, r, "", fi.ModTime(), f)
}

// csvPreview is the first rows of a CSV artifact.
type csvPreview struct {
	Header []string
	Rows   [][]string
	More   bool // the file has more rows than shown
}

const previewRows = 8

// previewCSV reads the first rows of a CSV artifact (at most 64 KiB of it).
func (s *Server) previewCSV(r *http.Request, id, aid int64) (*csvPreview, error) {
	f, _, err := s.artifactFile(r, id, aid)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cr := csv.NewReader(bufio.NewReader(io.LimitReader(f, 64<<10)))
	cr.FieldsPerRecord = -1
	if strings.EqualFold(filepath.Ext(f.Name()), ".tsv") {
		cr.Comma = '\t'
	}
	p := &csvPreview{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return p, nil
		}
		if err != nil {
			if len(p.Header) == 0 {
				return nil, err
			}
			p.More = true // cut by the size limit, or malformed further on
			return p, nil
		}
		if p.Header == nil {
			p.Header = rec
			continue
		}
		if len(p.Rows) == previewRows {
			p.More = true
			return p, nil
		}
		p.Rows = append(p.Rows, rec)
	}
}
