package ocr

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

func TestGenerateDataset(t *testing.T) {
	cfg := ArithConfig()
	cfg.Seed = 42
	g := mustGenerator(t, cfg)
	dir := filepath.Join(t.TempDir(), "cache")
	const n = 24
	var calls, last atomic.Int64
	err := GenerateDataset(context.Background(), g, dir, n, func(done, total int) {
		calls.Add(1)
		if total != n || int64(done) <= last.Load() {
			t.Errorf("progress(%d, %d) after %d", done, total, last.Load())
		}
		last.Store(int64(done))
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls.Load() != n || last.Load() != n {
		t.Errorf("progress called %d times, last %d", calls.Load(), last.Load())
	}
	if !CacheComplete(dir, g, n) || CacheComplete(dir, g, n+1) {
		t.Error("CacheComplete wrong")
	}
	other := cfg
	other.Seed++
	if CacheComplete(dir, mustGenerator(t, other), n) {
		t.Error("cache of seed 42 reported complete for seed 43")
	}

	// The folder is a valid competition dataset with the generator's images.
	d, err := LoadLabeled(context.Background(), dir, LoadOptions{
		Charset: ArithCharset, MaxLen: ArithMaxTextLen, Width: 180, Height: 60, CheckValues: true,
	})
	if err != nil || d.Err() != nil || len(d.Samples) != n || d.Format != FormatIndexed {
		t.Fatalf("load generated: %d samples, %v, %v", len(d.Samples), err, d.Err())
	}
	want := make([][]byte, n)
	for i, s := range d.Samples {
		img, text := g.Sample(int64(i))
		want[i] = pngBytes(t, img)
		if s.Text != text {
			t.Errorf("line %d: %q, want %q", s.Line, s.Text, text)
		}
		got, _ := os.ReadFile(s.Path)
		if !bytes.Equal(got, want[i]) {
			t.Errorf("%s differs from Sample(%d)", s.Name, i)
		}
	}

	// Resume after a crash: labels.txt not yet written, one image missing.
	os.Remove(filepath.Join(dir, LabelsFile))
	os.Remove(filepath.Join(dir, "5.png"))
	stamp := filepath.Join(dir, "7.png")
	before, _ := os.Stat(stamp)
	if err := GenerateDataset(context.Background(), g, dir, n, nil); err != nil {
		t.Fatal(err)
	}
	after, _ := os.Stat(stamp)
	if !after.ModTime().Equal(before.ModTime()) {
		t.Error("resume rewrote an existing image")
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "5.png")); !bytes.Equal(got, want[5]) {
		t.Error("resume did not restore 5.png")
	}

	// A different configuration rewrites everything, on any number of workers.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if err := GenerateDataset(context.Background(), mustGenerator(t, other), dir, n, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(stamp); bytes.Equal(got, want[7]) {
		t.Error("new seed kept the old 7.png")
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	if len(ents) != n+2 {
		t.Errorf("%d files, want %d", len(ents), n+2)
	}
}

func TestGenerateDatasetTextLabels(t *testing.T) {
	cfg := BookConfig()
	cfg.MinLen, cfg.MaxLen = 2, 5
	g := mustGenerator(t, cfg)
	dir := t.TempDir()
	if err := GenerateDataset(context.Background(), g, dir, 5, nil); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, LabelsFile))
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	for i, l := range lines {
		if l != g.Label(int64(i)) {
			t.Errorf("line %d %q, want %q", i+1, l, g.Label(int64(i)))
		}
	}
}

func TestGenerateDatasetCancel(t *testing.T) {
	g := mustGenerator(t, BookConfig())
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	err := GenerateDataset(ctx, g, dir, 10000, func(done, total int) {
		if done == 3 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if _, err := os.Stat(filepath.Join(dir, LabelsFile)); err == nil {
		t.Error("cancelled run wrote labels.txt")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) > 100 {
		t.Errorf("%d files after cancelling at 3", len(ents))
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(strings.TrimSuffix(e.Name(), ".png")); err != nil && e.Name() != ManifestFile {
			t.Errorf("stray file %s", e.Name())
		}
	}
}
