package slide

import (
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dl4img/dl4img/internal/fuzzguard"
)

// FuzzSlide feeds files to GDAL through Open and reads from every level:
// a corner of full resolution and the smallest level whole (what tissue
// detection reads). Nothing panics or crashes; errors name the file in
// one line; a read fills exactly the region asked for.
func FuzzSlide(f *testing.F) {
	dir := f.TempDir()
	for i, co := range [][]string{
		{"TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16", "COMPRESS=DEFLATE"},
		{"COMPRESS=NONE"},
		{"TILED=YES", "BLOCKXSIZE=16", "BLOCKYSIZE=16", "COMPRESS=JPEG"},
		{"COMPRESS=LZW", "INTERLEAVE=BAND"},
	} {
		p := filepath.Join(dir, "seed.tif")
		writeTIFF(f, p, 40, 24, co, []int{2, 4}[:i%3]...)
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	writePNG(f, filepath.Join(dir, "seed.png"), patternImage(9, 7))
	b, err := os.ReadFile(filepath.Join(dir, "seed.png"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		defer fuzzguard.Deadline()()
		path := filepath.Join(dir, "x.tif")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path)
		if err != nil {
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, path) {
				t.Fatalf("error %q: want one line naming the file", msg)
			}
			return
		}
		defer s.Close()
		for lvl := range s.Levels() {
			r := image.Rect(0, 0, 32, 32)
			if lvl == s.Levels()-1 && s.Size(lvl).X*s.Size(lvl).Y <= 1<<20 {
				r = s.Bounds(lvl)
			}
			img, err := s.ReadRegion(lvl, r)
			if err == nil && img.Rect != r {
				t.Fatalf("level %d: read %v, asked %v", lvl, img.Rect, r)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line: %q", err)
			}
		}
	})
}
