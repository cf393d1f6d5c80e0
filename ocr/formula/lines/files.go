package lines

import (
	"context"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dl4img/dl4img/internal/imagefile"
	"github.com/dl4img/dl4img/ocr/formula/boxes"
)

// partsDir holds one boxes file per finished image, so that a killed
// extraction resumes where it stopped; boxes.csv is assembled from them.
const partsDir = ".boxes"

// ExpandInputs turns files and directories into a sorted, de-duplicated list
// of image files (.png, .jpg, .jpeg; directories are not recursed).
func ExpandInputs(args []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", a, err)
		}
		if !st.IsDir() {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
			continue
		}
		ents, err := os.ReadDir(a)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", a, err)
		}
		var names []string
		for _, e := range ents {
			switch strings.ToLower(filepath.Ext(e.Name())) {
			case ".png", ".jpg", ".jpeg":
				if !e.IsDir() {
					names = append(names, e.Name())
				}
			}
		}
		sortNatural(names)
		for _, n := range names {
			p := filepath.Join(a, n)
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out, nil
}

// sortNatural orders "2.png" before "10.png", as competition folders number
// their images.
func sortNatural(names []string) {
	key := func(s string) (int, string) {
		stem := strings.TrimSuffix(s, filepath.Ext(s))
		n := 0
		for _, r := range stem {
			if r < '0' || r > '9' || n > 1e15 {
				return -1, s
			}
			n = n*10 + int(r-'0')
		}
		if stem == "" {
			return -1, s
		}
		return n, s
	}
	sort.SliceStable(names, func(i, j int) bool {
		ni, si := key(names[i])
		nj, sj := key(names[j])
		if (ni < 0) != (nj < 0) {
			return ni >= 0 // numbered files first
		}
		if ni != nj {
			return ni < nj
		}
		return si < sj
	})
}

// ExtractFiles runs an extractor with DefaultParams on GOMAXPROCS workers;
// see Extractor.ExtractFiles.
func ExtractFiles(ctx context.Context, paths []string, outDir, debugDir string, progress func(done, total int)) error {
	return NewExtractor().ExtractFiles(ctx, paths, outDir, debugDir, 0, progress)
}

// ExtractFiles runs the extractor over images in parallel (workers ≤ 0
// means GOMAXPROCS): it writes each strip as outDir/<name>.png, where name
// is the input's base name without extension, and all found boxes to
// outDir/boxes.csv (filename,line,x,y,w,h, in input order). With debugDir,
// every stage of every image is written as debugDir/<name>/<stage>.png.
// Images whose strip and boxes exist from an earlier run are skipped, so a
// killed extraction resumes. An image in which no line is found gets no
// strip and no rows, and is reported in the returned error after all others
// are done; progress, if not nil, is called after each image, never
// concurrently.
func (e *Extractor) ExtractFiles(ctx context.Context, paths []string, outDir, debugDir string, workers int, progress func(done, total int)) error {
	if err := e.Params.validate(); err != nil {
		return fmt.Errorf("extract files: %w", err)
	}
	names, err := outputNames(paths)
	if err != nil {
		return fmt.Errorf("extract files: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(outDir, partsDir), 0o755); err != nil {
		return fmt.Errorf("extract files: %w", err)
	}
	failed, err := e.extractAll(ctx, paths, names, outDir, debugDir, workers, progress)
	if err == nil {
		err = joinParts(outDir, names)
	}
	if err != nil {
		return fmt.Errorf("extract files: %w", err)
	}
	if len(failed) > 0 {
		sort.Strings(failed)
		return fmt.Errorf("extract files: %d of %d images: %w: %s", len(failed), len(paths), ErrNoLines, strings.Join(failed, ", "))
	}
	return nil
}

// outputNames are the inputs' base names without extension, which name
// their outputs; two inputs must not share one.
func outputNames(paths []string) ([]string, error) {
	names := make([]string, len(paths))
	byName := map[string]string{}
	for i, p := range paths {
		names[i] = strings.TrimSuffix(filepath.Base(p), filepath.Ext(p))
		if prev, ok := byName[names[i]]; ok {
			return nil, fmt.Errorf("%s and %s would both write %s.png", prev, p, names[i])
		}
		byName[names[i]] = p
	}
	return names, nil
}

// extractAll extracts the images on workers goroutines (≤ 0: GOMAXPROCS)
// until all are done or one fails; failed are those without lines.
func (e *Extractor) extractAll(ctx context.Context, paths, names []string, outDir, debugDir string, workers int,
	progress func(done, total int)) (failed []string, err error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var (
		next         atomic.Int64
		mu           sync.Mutex
		done         int
		wg           sync.WaitGroup
		cctx, cancel = context.WithCancel(ctx)
	)
	defer cancel()
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(paths) && cctx.Err() == nil; i = int(next.Add(1) - 1) {
				ferr := e.extractFile(paths[i], names[i], outDir, debugDir)
				mu.Lock()
				switch {
				case errors.Is(ferr, ErrNoLines):
					failed = append(failed, paths[i])
				case ferr != nil && err == nil:
					err = ferr
					cancel()
				}
				done++
				if progress != nil {
					progress(done, len(paths))
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err == nil {
		err = ctx.Err()
	}
	return failed, err
}

// joinParts writes outDir/boxes.csv from the images' part files, in input
// order; an image without one had no lines.
func joinParts(outDir string, names []string) error {
	var rows []boxes.Row
	for _, n := range names {
		part, err := boxes.Read(filepath.Join(outDir, partsDir, n+".csv"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		rows = append(rows, part...)
	}
	return boxes.Write(filepath.Join(outDir, "boxes.csv"), rows)
}

func (e *Extractor) extractFile(path, name, outDir, debugDir string) error {
	stripPath := filepath.Join(outDir, name+".png")
	partPath := filepath.Join(outDir, partsDir, name+".csv")
	if fileExists(stripPath) && fileExists(partPath) {
		return nil
	}
	img, err := imagefile.ReadGray(path)
	if err != nil {
		return err
	}
	var debug Debug
	var debugErr error
	if debugDir != "" {
		dir := filepath.Join(debugDir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("debug dir: %w", err)
		}
		debug = func(stage string, img image.Image) {
			if debugErr == nil {
				debugErr = imagefile.WritePNG(filepath.Join(dir, stage+".png"), img, true)
			}
		}
	}
	strip, found, err := e.Extract(img, debug)
	if debugErr != nil {
		return debugErr
	}
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := imagefile.WritePNG(stripPath, strip, true); err != nil {
		return err
	}
	rows := make([]boxes.Row, len(found))
	for l, b := range found {
		rows[l] = boxes.Row{File: filepath.Base(path), Line: l, Box: b}
	}
	// The part file is written last: its presence marks the image done.
	return boxes.Write(partPath, rows)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
