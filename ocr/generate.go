package ocr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/dl4img/dl4img/internal/atomicfile"
	"github.com/dl4img/dl4img/internal/imagefile"
	"github.com/dl4img/dl4img/ocr/expr"
)

// ManifestFile records how a generated folder was made; GenerateDataset
// writes it before the images and labels.txt after them, so labels.txt
// marks a complete folder and the manifest lets an interrupted run resume.
const ManifestFile = "generator.json"

// Manifest is the content of ManifestFile.
type Manifest struct {
	Config CaptchaConfig `json:"config"`
	N      int           `json:"n"`
}

// GenerateDataset writes samples 0..n-1 of g to dir in the competition
// layout: 0.png … (n-1).png and labels.txt (FormatIndexed; "expression
// value" lines in arith mode, the text alone otherwise). Every file is
// written atomically. Images already present from an interrupted run with
// the same configuration and n are kept (generation is deterministic);
// otherwise everything is rewritten. progress, if not nil, is called after
// each image with a non-decreasing done count, from one goroutine at a time.
func GenerateDataset(ctx context.Context, g *Generator, dir string, n int, progress func(done, total int)) error {
	if n < 0 {
		return fmt.Errorf("generate dataset: n = %d", n)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("generate dataset: %w", err)
	}
	want := Manifest{Config: g.Config(), N: n}
	resume := false
	if have, err := ReadManifest(dir); err == nil && manifestsEqual(have, &want) {
		resume = true
	}
	if !resume {
		// An old labels.txt would mark a half-rewritten folder as complete.
		if err := os.Remove(filepath.Join(dir, LabelsFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("generate dataset: %w", err)
		}
		mj, err := json.MarshalIndent(want, "", "  ")
		if err != nil {
			return fmt.Errorf("generate dataset: %w", err)
		}
		if err := atomicfile.Write(filepath.Join(dir, ManifestFile), true, func(w io.Writer) error {
			_, err := w.Write(append(mj, '\n'))
			return err
		}); err != nil {
			return fmt.Errorf("generate dataset: %w", err)
		}
	}

	var mu sync.Mutex
	done := 0
	err := parallelFor(ctx, n, func(i int) error {
		path := filepath.Join(dir, strconv.Itoa(i)+".png")
		skip := false
		if resume {
			if _, err := os.Stat(path); err == nil {
				skip = true
			}
		}
		if !skip {
			img, _ := g.Sample(int64(i))
			if err := imagefile.WritePNG(path, img, false); err != nil {
				return err
			}
		}
		if progress != nil {
			mu.Lock()
			done++
			progress(done, n)
			mu.Unlock()
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("generate dataset %s: %w", dir, err)
	}

	var labels bytes.Buffer
	for i := range n {
		if i%4096 == 0 && ctx.Err() != nil {
			return fmt.Errorf("generate dataset %s: %w", dir, ctx.Err())
		}
		line, err := g.labelLine(int64(i))
		if err != nil {
			return fmt.Errorf("generate dataset %s: sample %d: %w", dir, i, err)
		}
		labels.WriteString(line)
		labels.WriteByte('\n')
	}
	if err := atomicfile.Write(filepath.Join(dir, LabelsFile), true, func(w io.Writer) error {
		_, err := w.Write(labels.Bytes())
		return err
	}); err != nil {
		return fmt.Errorf("generate dataset: %w", err)
	}
	return nil
}

// labelLine is sample index's labels.txt line.
func (g *Generator) labelLine(index int64) (string, error) {
	text := g.Label(index)
	if g.cfg.Mode != ModeArith {
		return text, nil
	}
	v, err := expr.Prelim.Eval(text)
	if err != nil {
		// Only a "/" in ArithOps can get here (division by zero); such a
		// sample has no value to learn, so the line carries none.
		return text, nil
	}
	return text + " " + expr.Prelim.Format(v), nil
}

// ReadManifest reads dir's ManifestFile.
func ReadManifest(dir string) (*Manifest, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	return &m, nil
}

// CacheComplete reports whether dir holds a finished GenerateDataset run of
// g with n samples, so a pre-generated cache can be reused across runs.
func CacheComplete(dir string, g *Generator, n int) bool {
	m, err := ReadManifest(dir)
	if err != nil || !manifestsEqual(m, &Manifest{Config: g.Config(), N: n}) {
		return false
	}
	_, err = os.Stat(filepath.Join(dir, LabelsFile))
	return err == nil
}

func manifestsEqual(a, b *Manifest) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
