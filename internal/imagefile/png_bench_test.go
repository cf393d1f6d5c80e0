package imagefile_test

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/dl4img/dl4img/internal/imagefile"
	"github.com/dl4img/dl4img/ocr/formula/lines"
)

// BenchmarkDecodePNG compares the fast gray PNG path with image/png plus
// the extractor's gray conversion (lines.ToGray) on a dataset folder
// (FORMULA_DIR, written by `dl4img gen formula`).
func BenchmarkDecodePNG(b *testing.B) {
	dir := os.Getenv("FORMULA_DIR")
	if dir == "" {
		b.Skip("set FORMULA_DIR to a dataset written by `dl4img gen formula`")
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.png"))
	if err != nil || len(paths) == 0 {
		b.Fatalf("no PNGs in %s: %v", dir, err)
	}
	if len(paths) > 10 {
		paths = paths[:10]
	}
	var files [][]byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, data)
	}
	// CPU time per image is reported besides wall time: the benchmark
	// machine is shared.
	b.Run("fast", func(b *testing.B) {
		cpu0, n := cpuTime(b), 0
		for i := 0; b.Loop(); i++ {
			if _, err := imagefile.DecodeGray(files[i%len(files)]); err != nil {
				b.Fatal(err)
			}
			n++
		}
		b.ReportMetric(float64(cpuTime(b)-cpu0)/1e6/float64(n), "cpu-ms/op")
	})
	b.Run("imagepng", func(b *testing.B) {
		cpu0, n := cpuTime(b), 0
		for i := 0; b.Loop(); i++ {
			img, err := png.Decode(bytes.NewReader(files[i%len(files)]))
			if err != nil {
				b.Fatal(err)
			}
			lines.ToGray(img)
			n++
		}
		b.ReportMetric(float64(cpuTime(b)-cpu0)/1e6/float64(n), "cpu-ms/op")
	})
}

// cpuTime is the process's user+sys CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
