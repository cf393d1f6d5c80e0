package transfer

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/dl4img/dl4img/tasks"
)

// Extractor computes the pooled features of images with one or more
// backbones, through a cache of one small file per (backbone file hash,
// image file hash). Files are written atomically, so a killed extraction
// leaves complete entries only and a rerun computes just the rest; the
// cache lives outside the job's folder, so other runs reuse it.
type Extractor struct {
	Backbones []*Backbone
	CacheDir  string
	BatchSize int
	// Workers decode images in parallel (default: the CPU count).
	Workers int
	// SkipBad reports undecodable files through Logf and skips them;
	// otherwise the first one is the error.
	SkipBad  bool
	Logf     func(format string, args ...any)
	Progress func(label string, done, total int)
	// MarkDone records finished items (tasks.Env.MarkDone) as
	// "<backbone hash prefix>:<image hash>".
	MarkDone func(keys ...string) error
	// Computed counts images whose features were computed (not cached).
	Computed int
}

func (e *Extractor) cachePath(b *Backbone, imgHash string) string {
	return filepath.Join(e.CacheDir, b.Hash[:16], imgHash[:2], imgHash+".f32")
}

func readVector(path string) ([]float32, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(raw)%4 != 0 || len(raw) == 0 {
		return nil, fmt.Errorf("%s: torn cache entry", path)
	}
	v := make([]float32, len(raw)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return v, nil
}

func writeVector(path string, v []float32) error {
	return tasks.WriteFileAtomic(path, func(w io.Writer) error {
		buf := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
		}
		_, err := w.Write(buf)
		return err
	})
}

func (e *Extractor) workers() int {
	if e.Workers > 0 {
		return e.Workers
	}
	return runtime.NumCPU()
}

// parallel runs fn(i) for i in [0,n) on the worker pool.
func (e *Extractor) parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(e.workers(), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// hashItems returns the sha256 of each item's file.
func (e *Extractor) hashItems(ctx context.Context, items []Item) ([]string, error) {
	hashes := make([]string, len(items))
	errs := make([]error, len(items))
	e.parallel(len(items), func(i int) {
		if ctx.Err() != nil {
			return
		}
		hashes[i], errs[i] = fileHash(items[i].Path)
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return hashes, nil
}

// Run returns the concatenated features of every item (nil for a skipped
// bad image) and the bad files found.
func (e *Extractor) Run(ctx context.Context, items []Item) ([][]float32, []error, error) {
	if e.BatchSize < 1 {
		e.BatchSize = 32
	}
	hashes, err := e.hashItems(ctx, items)
	if err != nil {
		return nil, nil, err
	}
	badIdx := map[int]bool{}
	var bad []error
	for bi, b := range e.Backbones {
		var todo []int
		for i := range items {
			if badIdx[i] {
				continue
			}
			if _, err := os.Stat(e.cachePath(b, hashes[i])); err != nil {
				todo = append(todo, i)
			}
		}
		label := fmt.Sprintf("features %s (%d/%d)", b.Name(), bi+1, len(e.Backbones))
		if e.Logf != nil && len(todo) < len(items) {
			e.Logf("%s: %d of %d images cached", b.Name(), len(items)-len(todo), len(items))
		}
		for start := 0; start < len(todo); start += e.BatchSize {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			idx := todo[start:min(start+e.BatchSize, len(todo))]
			inputs := make([][]float32, len(idx))
			errs := make([]error, len(idx))
			e.parallel(len(idx), func(k int) {
				inputs[k], errs[k] = b.Pre.loadInput(items[idx[k]].Path)
			})
			var ok []int
			var okIn [][]float32
			for k, err := range errs {
				if err != nil {
					if errors.Is(err, ErrNotImage) {
						err = &BadFileError{items[idx[k]].Rel, "not an image"}
					} else {
						err = fmt.Errorf("%s: %w", items[idx[k]].Rel, err)
					}
					if !e.SkipBad {
						return nil, nil, err
					}
					if e.Logf != nil {
						e.Logf("skipping %v", err)
					}
					bad = append(bad, err)
					badIdx[idx[k]] = true
					continue
				}
				ok = append(ok, idx[k])
				okIn = append(okIn, inputs[k])
			}
			if len(ok) > 0 {
				feats, err := b.Features(okIn)
				if err != nil {
					return nil, nil, err
				}
				keys := make([]string, len(ok))
				for k, i := range ok {
					if err := writeVector(e.cachePath(b, hashes[i]), feats[k]); err != nil {
						return nil, nil, fmt.Errorf("feature cache: %w", err)
					}
					keys[k] = b.Hash[:16] + ":" + hashes[i]
				}
				e.Computed += len(ok)
				if e.MarkDone != nil {
					if err := e.MarkDone(keys...); err != nil {
						return nil, nil, err
					}
				}
			}
			if e.Progress != nil {
				e.Progress(label, min(start+e.BatchSize, len(todo)), len(todo))
			}
		}
	}
	out := make([][]float32, len(items))
	for i := range items {
		if badIdx[i] {
			continue
		}
		for _, b := range e.Backbones {
			v, err := readVector(e.cachePath(b, hashes[i]))
			if err != nil {
				return nil, nil, fmt.Errorf("feature cache of %s: %w", items[i].Rel, err)
			}
			out[i] = append(out[i], v...)
		}
	}
	return out, bad, nil
}

// fileHash is the sha256 of a file: an image's feature-cache key.
func fileHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
