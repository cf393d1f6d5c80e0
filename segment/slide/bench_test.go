package slide

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Benchmarks (not run by `go test` without -bench):
//
//	GOEXPERIMENT=simd go test ./segment/slide -run '^$' -bench Tile16k -benchtime 1x
//
// The 16384² slide is generated once into $DL4IMG_BENCH_DIR (default
// $TMPDIR/dl4img-bench) and reused.

func benchDir(b *testing.B) string {
	dir := os.Getenv("DL4IMG_BENCH_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "dl4img-bench")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	return dir
}

func benchSlide(b *testing.B, side int) (string, string) {
	dir := benchDir(b)
	p := filepath.Join(dir, "synth"+strconv.Itoa(side)+".tif")
	m := filepath.Join(dir, "synth"+strconv.Itoa(side)+"_mask.tif")
	if _, err := os.Stat(p); err == nil {
		return p, m
	}
	start := time.Now()
	if err := GenerateSlide(context.Background(), GenConfig{Width: side, Height: side, Seed: 1}, p, m); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %s in %s", p, time.Since(start))
	return p, m
}

// resetPeakRSS makes VmHWM restart from the current RSS (Linux ≥ 4.0).
func resetPeakRSS() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

func peakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

func benchTiling(b *testing.B, format string, minTissue float64) {
	p, _ := benchSlide(b, 16384)
	resetPeakRSS()
	b.ResetTimer()
	tiles := 0
	for i := 0; i < b.N; i++ {
		out := filepath.Join(b.TempDir(), "tiles")
		s, err := Open(p)
		if err != nil {
			b.Fatal(err)
		}
		err = ExportTiles(context.Background(), s, TileOptions{Format: format, MinTissue: minTissue}, out,
			func(TileRecord) error { tiles++; return nil })
		s.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(tiles)/b.Elapsed().Seconds(), "tiles/s")
	b.ReportMetric(float64(tiles)/float64(b.N), "tiles/op")
	b.ReportMetric(peakRSSMB(), "peakRSS-MB")
}

// All 4096 tiles, like `vips dzsave --depth one --tile-size 256`.
func BenchmarkTile16kJPEGAll(b *testing.B)    { benchTiling(b, "jpeg", 0) }
func BenchmarkTile16kPNGAll(b *testing.B)     { benchTiling(b, "png", 0) }
func BenchmarkTile16kJPEGTissue(b *testing.B) { benchTiling(b, "jpeg", 0.1) }

// BenchmarkStitch streams a Gaussian-blended prediction of
// $DL4IMG_STITCH_W × $DL4IMG_STITCH_H pixels (default 16384²) with 256-pixel
// windows and 32 pixels of overlap, and reports peak RSS. Memory depends on
// the width only, so a 100000 × 1024 run shows the 100k² peak.
func BenchmarkStitch(b *testing.B) {
	w, h := 16384, 16384
	if v, err := strconv.Atoi(os.Getenv("DL4IMG_STITCH_W")); err == nil {
		w = v
	}
	if v, err := strconv.Atoi(os.Getenv("DL4IMG_STITCH_H")); err == nil {
		h = v
	}
	resetPeakRSS()
	for i := 0; i < b.N; i++ {
		st, err := NewStitcher(filepath.Join(b.TempDir(), "pred.tif"),
			StitchOptions{Width: w, Height: h, Window: 256, Overlap: 32, Blend: BlendGaussian})
		if err != nil {
			b.Fatal(err)
		}
		win := make([]float32, 256*256)
		for j := range win {
			win[j] = float32(j%256) / 255
		}
		cols, rows := st.Grid()
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				if err := st.Add(c, r, win); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(peakRSSMB(), "peakRSS-MB")
}
