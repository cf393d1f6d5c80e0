package lines

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/dl4img/dl4img/internal/imagefile"
)

// benchImages are generated once per benchmark run, encoded as PNG like a
// dataset on disk.
func benchImages(b *testing.B, n int) [][]byte {
	g := testGenerator(b)
	out := make([][]byte, n)
	for i := range out {
		s, err := g.Sample(1000 + i)
		if err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := png.Encode(&buf, s.Image); err != nil {
			b.Fatal(err)
		}
		out[i] = buf.Bytes()
	}
	return out
}

// BenchmarkExtract measures the pipeline on decoded images (images/s).
func BenchmarkExtract(b *testing.B) {
	files := benchImages(b, 8)
	imgs := make([]image.Image, len(files))
	for i, f := range files {
		imgs[i], _ = png.Decode(bytes.NewReader(f))
	}
	e := NewExtractor()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, _, err := e.Extract(imgs[i%len(imgs)], nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkDecodeExtract includes PNG decoding, as a dataset run pays it.
func BenchmarkDecodeExtract(b *testing.B) {
	files := benchImages(b, 8)
	e := NewExtractor()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		img, err := png.Decode(bytes.NewReader(files[i%len(files)]))
		if err != nil {
			b.Fatal(err)
		}
		if _, _, err := e.Extract(img, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkStages times each full-resolution stage on one large image.
func BenchmarkStages(b *testing.B) {
	files := benchImages(b, 1)
	img, _ := png.Decode(bytes.NewReader(files[0]))
	gray := ToGray(img)
	b.Logf("image %v", gray.Rect)
	b.Run("gray", func(b *testing.B) {
		for b.Loop() {
			ToGray(img)
		}
	})
	b.Run("histogram", func(b *testing.B) {
		for b.Loop() {
			Histogram(gray)
		}
	})
	for _, k := range []int{3, 5} {
		b.Run("median"+string(rune('0'+k)), func(b *testing.B) {
			for b.Loop() {
				Median(gray, k)
			}
		})
	}
	b.Run("downscale4", func(b *testing.B) {
		for b.Loop() {
			Downscale(gray, 4, nil)
		}
	})
}

// BenchmarkSample times drawing one competition-size image (no encoding).
func BenchmarkSample(b *testing.B) {
	g := testGenerator(b)
	for i := 0; b.Loop(); i++ {
		if _, err := g.Sample(i); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExtractDir runs the pipeline over the decoded images of a
// dataset folder (FORMULA_DIR, as TestExtractDir), one image per iteration,
// for profiles and per-image cost on the images the OpenCV comparison uses.
func BenchmarkExtractDir(b *testing.B) {
	dir := os.Getenv("FORMULA_DIR")
	if dir == "" {
		b.Skip("set FORMULA_DIR to a dataset written by `dl4img gen formula`")
	}
	names, err := filepath.Glob(filepath.Join(dir, "*.png"))
	if err != nil || len(names) == 0 {
		b.Fatalf("no PNG files in %s: %v", dir, err)
	}
	sortNatural(names)
	imgs := make([]image.Image, len(names))
	for i, n := range names {
		if imgs[i], err = imagefile.ReadGray(n); err != nil {
			b.Fatal(err)
		}
	}
	e := NewExtractor()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		e.Extract(imgs[i%len(imgs)], nil)
	}
}
