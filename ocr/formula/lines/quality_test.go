package lines

import (
	"image"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/dl4img/dl4img/internal/imagefile"
	"github.com/dl4img/dl4img/ocr/formula/boxes"
	"github.com/dl4img/dl4img/ocr/formula/synth"
)

// iou is the intersection over union of two rectangles.
func iou(a, b image.Rectangle) float64 {
	in := a.Intersect(b)
	if in.Empty() {
		return 0
	}
	ia := float64(in.Dx() * in.Dy())
	return ia / (float64(a.Dx()*a.Dy()+b.Dx()*b.Dy()) - ia)
}

type qualityStats struct {
	images, lines, wrongCount, found50, found90 int
	// Causes of IoU < 0.9: no box overlaps the line; the box holds the
	// line plus noise (≥ 95% of the line covered); part of the line cut off.
	missed, tooLarge, cutOff int
	worst                    []string
}

// measureQuality extracts samples [from, from+n) and matches each
// ground-truth line to the found box with the best IoU.
func measureQuality(t testing.TB, g *synth.Generator, e *Extractor, from, n int) qualityStats {
	var st qualityStats
	for i := from; i < from+n; i++ {
		s, err := g.Sample(i)
		if err != nil {
			t.Fatal(err)
		}
		_, boxes, err := e.Extract(s.Image, nil)
		st.images++
		st.lines += len(s.Boxes)
		if err != nil {
			st.wrongCount++
			st.worst = append(st.worst, err.Error())
			continue
		}
		if len(boxes) != len(s.Boxes) {
			st.wrongCount++
			st.worst = append(st.worst, sprintf("sample %d: %d lines, want %d", i, len(boxes), len(s.Boxes)))
		}
		for l, gt := range s.Boxes {
			best, bestBox := 0.0, image.Rectangle{}
			for _, b := range boxes {
				if v := iou(gt, b); v > best {
					best, bestBox = v, b
				}
			}
			in := gt.Intersect(bestBox)
			switch {
			case best >= 0.9:
			case best == 0:
				st.missed++
			case in.Dx()*in.Dy()*100 >= 95*gt.Dx()*gt.Dy():
				st.tooLarge++
			default:
				st.cutOff++
			}
			if best >= 0.5 {
				st.found50++
			}
			if best >= 0.9 {
				st.found90++
			} else {
				st.worst = append(st.worst, sprintf("sample %d line %d: IoU %.3f gt %v", i, l, best, gt))
			}
		}
	}
	return st
}

// qualitySet is the generated sample range the quality tests use:
// FORMULA_QUALITY_N samples (default n) from FORMULA_QUALITY_OFFSET
// (default 0) of seed FORMULA_QUALITY_SEED (default 42). It skips the test
// when the fonts are missing.
func qualitySet(t *testing.T, n int) (g *synth.Generator, from, count int) {
	t.Helper()
	seed := uint64(42)
	if v, err := strconv.Atoi(os.Getenv("FORMULA_QUALITY_N")); err == nil && v > 0 {
		n = v
	}
	if v, err := strconv.Atoi(os.Getenv("FORMULA_QUALITY_OFFSET")); err == nil && v >= 0 {
		from = v
	}
	if v, err := strconv.ParseUint(os.Getenv("FORMULA_QUALITY_SEED"), 10, 64); err == nil {
		seed = v
	}
	g, err := synth.NewGenerator(synth.Config{Seed: seed})
	if err != nil {
		t.Skipf("formula fonts unavailable: %v", err)
	}
	return g, from, n
}

func TestExtractQuality(t *testing.T) {
	// FORMULA_QUALITY_N=500 measures on more images (about 0.15 s each);
	// FORMULA_QUALITY_OFFSET=300 starts at sample 300 and
	// FORMULA_QUALITY_SEED=43 draws another set: the parameters were tuned
	// on seed 42's samples 0–299, so held-out checks use the others.
	g, from, n := qualitySet(t, 20)
	e := NewExtractor()
	st := measureQuality(t, g, e, from, n)
	for _, w := range st.worst {
		t.Log(w)
	}
	t.Logf("%d images, %d lines: wrong count %d, IoU≥0.5 %d, IoU≥0.9 %d; below 0.9: missed %d, noise attached %d, cut off %d",
		st.images, st.lines, st.wrongCount, st.found50, st.found90, st.missed, st.tooLarge, st.cutOff)
	if st.wrongCount > 0 {
		t.Errorf("%d of %d images yielded the wrong number of lines", st.wrongCount, st.images)
	}
	if float64(st.found50) < 0.95*float64(st.lines) {
		t.Errorf("only %d of %d lines found with IoU ≥ 0.5", st.found50, st.lines)
	}
}

// TestExtractDir measures the pipeline on a generated dataset folder, like
// bench/formula_opencv.py does, single goroutine:
//
//	FORMULA_DIR=/tmp/fq GOEXPERIMENT=simd go test ./ocr/formula -run TestExtractDir -v
func TestExtractDir(t *testing.T) {
	dir := os.Getenv("FORMULA_DIR")
	if dir == "" {
		t.Skip("set FORMULA_DIR to a dataset written by `dl4img gen formula`")
	}
	rows, err := boxes.Read(filepath.Join(dir, "boxes.csv"))
	if err != nil {
		t.Fatal(err)
	}
	truth := map[string][]image.Rectangle{}
	var names []string
	for _, r := range rows {
		if _, ok := truth[r.File]; !ok {
			names = append(names, r.File)
		}
		truth[r.File] = append(truth[r.File], r.Box)
	}
	sortNatural(names)
	cpu0 := cpuTime(t)
	start := time.Now()
	imgs := make([]image.Image, len(names))
	for i, n := range names {
		var err error
		if imgs[i], err = imagefile.ReadGray(filepath.Join(dir, n)); err != nil {
			t.Fatal(err)
		}
	}
	tDec := time.Since(start)
	cpu1 := cpuTime(t)
	e := NewExtractor()
	start = time.Now()
	found := make([][]image.Rectangle, len(imgs))
	for i, img := range imgs {
		_, found[i], _ = e.Extract(img, nil)
	}
	tExt := time.Since(start)
	cpu2 := cpuTime(t)
	var lines, f50, f90, wrong int
	for i, n := range names {
		gt := truth[n]
		lines += len(gt)
		if len(found[i]) != len(gt) {
			wrong++
		}
		for _, g := range gt {
			best := 0.0
			for _, b := range found[i] {
				best = max(best, iou(g, b))
			}
			if best >= 0.5 {
				f50++
			}
			if best >= 0.9 {
				f90++
			}
		}
	}
	n := float64(len(names))
	t.Logf("go: %d images, decode %.1f images/s, pipeline %.1f images/s (%.1f ms/image), single goroutine",
		len(names), n/tDec.Seconds(), n/tExt.Seconds(), 1000*tExt.Seconds()/n)
	t.Logf("go: CPU seconds (user+sys, whole process): decode %.2f s (%.1f ms/image), pipeline %.2f s (%.1f ms/image)",
		(cpu1 - cpu0).Seconds(), 1000*(cpu1-cpu0).Seconds()/n, (cpu2 - cpu1).Seconds(), 1000*(cpu2-cpu1).Seconds()/n)
	perImage := (cpu2 - cpu0).Seconds() / n
	t.Logf("go: whole pipeline (read + decode + extract) %.1f CPU-ms/image = %.1f images/s per core; 100k images on %d cores ≈ %.2f h",
		1000*perImage, 1/perImage, runtime.NumCPU(), 1e5*perImage/float64(runtime.NumCPU())/3600)
	t.Logf("lines %d: IoU>=0.5 %d (%.2f%%), IoU>=0.9 %d (%.2f%%), images with wrong line count %d",
		lines, f50, 100*float64(f50)/float64(lines), f90, 100*float64(f90)/float64(lines), wrong)
}

// cpuTime is the process's user+sys CPU time so far: on the shared machine
// wall time swings with other jobs, CPU time much less.
func cpuTime(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
