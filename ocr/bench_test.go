package ocr

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"testing"
)

func benchGenerator(b *testing.B, cfg CaptchaConfig) *Generator {
	b.Helper()
	g, err := NewGenerator(cfg)
	if err != nil {
		b.Fatal(err)
	}
	return g
}

func reportRate(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "images/s")
}

// BenchmarkSampleBook measures one core drawing the book's 170×80 captchas.
func BenchmarkSampleBook(b *testing.B) {
	g := benchGenerator(b, BookConfig())
	i := int64(0)
	for b.Loop() {
		g.Sample(i)
		i++
	}
	reportRate(b, b.N)
}

// BenchmarkSampleArith measures one core drawing 180×60 expressions.
func BenchmarkSampleArith(b *testing.B) {
	g := benchGenerator(b, ArithConfig())
	i := int64(0)
	for b.Loop() {
		g.Sample(i)
		i++
	}
	reportRate(b, b.N)
}

// BenchmarkSampleBatch measures the on-the-fly feed on all cores (batch 128).
func BenchmarkSampleBatch(b *testing.B) {
	g := benchGenerator(b, BookConfig())
	imgs, labels := make([]*image.RGBA, 128), make([]string, 128)
	start := int64(0)
	for b.Loop() {
		if err := g.SampleBatch(context.Background(), start, imgs, labels); err != nil {
			b.Fatal(err)
		}
		start += 128
	}
	reportRate(b, b.N*128)
}

// BenchmarkEncodePNG isolates the PNG encoding cost of a pre-generated cache.
func BenchmarkEncodePNG(b *testing.B) {
	g := benchGenerator(b, BookConfig())
	img, _ := g.Sample(0)
	var buf bytes.Buffer
	for b.Loop() {
		buf.Reset()
		png.Encode(&buf, img)
	}
	reportRate(b, b.N)
}

// BenchmarkGenerateDataset measures writing a cache on all cores.
func BenchmarkGenerateDataset(b *testing.B) {
	g := benchGenerator(b, BookConfig())
	const n = 256
	for b.Loop() {
		if err := GenerateDataset(context.Background(), g, b.TempDir(), n, nil); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N*n)
}
