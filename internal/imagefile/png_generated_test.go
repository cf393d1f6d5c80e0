package imagefile_test

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"testing"

	"github.com/dl4img/dl4img/internal/imagefile"
	"github.com/dl4img/dl4img/ocr/formula/lines"
	"github.com/dl4img/dl4img/ocr/formula/synth"
)

// TestDecodePNGGrayGenerated: the generator's images take the fast path
// and give the gray image the extractor got from image/png and its own
// conversion.
func TestDecodePNGGrayGenerated(t *testing.T) {
	dir := t.TempDir()
	if err := synth.GenerateDataset(context.Background(), synth.Config{Seed: 7, MaxHeight: 500, MaxWidth: 1200}, dir, 3, nil); err != nil {
		t.Skipf("formula generator: %v", err)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.png"))
	if err != nil || len(paths) != 3 {
		t.Fatalf("generated PNGs: %v, %v", paths, err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := imagefile.DecodeGray(data)
		g, fast := img.(*image.Gray)
		if err != nil || !fast {
			t.Fatalf("%s: %T, %v; want the fast path's *image.Gray", p, img, err)
		}
		ref, err := png.Decode(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if want := lines.ToGray(ref); g.Rect != want.Rect || !bytes.Equal(g.Pix, want.Pix) {
			t.Fatalf("%s: fast path gray differs from image/png + lines.ToGray", p)
		}
	}
}
