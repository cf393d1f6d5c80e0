package formula

import (
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestScratchDebug(t *testing.T) {
	dir := os.Getenv("SCRATCH_DIR")
	if dir == "" {
		t.Skip()
	}
	idx, _ := strconv.Atoi(os.Getenv("SCRATCH_IDX"))
	g := testGenerator(t)
	s, err := g.Sample(idx)
	if err != nil {
		t.Fatal(err)
	}
	var cr image.Rectangle
	fmt.Sscanf(os.Getenv("SCRATCH_CROP"), "%d,%d,%d,%d", &cr.Min.X, &cr.Min.Y, &cr.Max.X, &cr.Max.Y)
	full := s.Image.Bounds().Dx()
	e := NewExtractor()
	_, boxes, err := e.Extract(s.Image, func(stage string, img image.Image) {
		if !cr.Empty() {
			f := (full + img.Bounds().Dx()/2) / img.Bounds().Dx()
			if f >= 1 && img.Bounds().Dx()*2 > full/f {
				r := image.Rect(cr.Min.X/f, cr.Min.Y/f, cr.Max.X/f, cr.Max.Y/f).Intersect(img.Bounds())
				sub := image.NewRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
				draw.Draw(sub, sub.Rect, img, r.Min, draw.Src)
				img = sub
				if f > 1 {
					g := ToGray(sub)
					img = UpscaleNearest(g, f, g.Rect.Dx()*f, g.Rect.Dy()*f)
				}
			}
		}
		f, _ := os.Create(filepath.Join(dir, stage+".png"))
		png.Encode(f, img)
		f.Close()
	})
	t.Log(boxes, err, s.Boxes)
}
