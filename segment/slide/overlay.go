package slide

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
)

// OverlayOptions styles an overlay picture.
type OverlayOptions struct {
	MaxSide   int     // longer side of the picture, default 1024
	Threshold float64 // prediction threshold, default 0.5
	Alpha     float64 // opacity of the prediction fill, default 0.45
	// Truth, when set, is drawn as a green outline.
	Truth *Mask
}

// WriteOverlay writes a small PNG: the slide thumbnail with the prediction
// raster (predPath, any level of the slide; "" for none) filled in red and
// the ground truth, if given, outlined in green.
func WriteOverlay(s *Slide, predPath, outPNG string, o OverlayOptions) error {
	if o.MaxSide == 0 {
		o.MaxSide = 1024
	}
	if o.Threshold == 0 {
		o.Threshold = 0.5
	}
	if o.Alpha == 0 {
		o.Alpha = 0.45
	}
	full := s.Size(0)
	scale := float64(o.MaxSide) / float64(max(full.X, full.Y))
	if scale > 1 {
		scale = 1
	}
	out := image.Pt(max(1, int(float64(full.X)*scale)), max(1, int(float64(full.Y)*scale)))
	lvl := s.BestLevel(max(out.X, out.Y))
	src, err := s.ReadRegion(lvl, s.Bounds(lvl))
	if err != nil {
		return fmt.Errorf("overlay %s: %w", outPNG, err)
	}
	img := resizeNearest(src, out)
	if predPath != "" {
		pr, err := OpenRaster(predPath)
		if err != nil {
			return fmt.Errorf("overlay %s: %w", outPNG, err)
		}
		p, err := pr.Read(image.Rectangle{Max: pr.Size()}, out)
		pr.Close()
		if err != nil {
			return fmt.Errorf("overlay %s: %w", outPNG, err)
		}
		for i, v := range p {
			if float64(v) >= o.Threshold {
				px := img.Pix[4*i : 4*i+3]
				px[0] = uint8(float64(px[0])*(1-o.Alpha) + 230*o.Alpha)
				px[1] = uint8(float64(px[1]) * (1 - o.Alpha))
				px[2] = uint8(float64(px[2]) * (1 - o.Alpha))
			}
		}
	}
	if o.Truth != nil {
		t, err := o.Truth.ReadRegion(image.Rectangle{Max: o.Truth.Size()}, out)
		if err != nil {
			return fmt.Errorf("overlay %s: %w", outPNG, err)
		}
		for y := 0; y < out.Y; y++ {
			for x := 0; x < out.X; x++ {
				i := y*out.X + x
				if t.Pix[i] == 0 {
					continue
				}
				edge := x == 0 || y == 0 || x == out.X-1 || y == out.Y-1 ||
					t.Pix[i-1] == 0 || t.Pix[i+1] == 0 || t.Pix[i-out.X] == 0 || t.Pix[i+out.X] == 0
				if edge {
					copy(img.Pix[4*i:4*i+4], []uint8{0, 200, 0, 255})
				}
			}
		}
	}
	return writePNGAtomic(outPNG, img)
}

func resizeNearest(src *image.NRGBA, out image.Point) *image.NRGBA {
	b := src.Rect
	if b.Dx() == out.X && b.Dy() == out.Y {
		return src
	}
	dst := image.NewNRGBA(image.Rectangle{Max: out})
	for y := 0; y < out.Y; y++ {
		sy := b.Min.Y + (2*y+1)*b.Dy()/(2*out.Y)
		for x := 0; x < out.X; x++ {
			sx := b.Min.X + (2*x+1)*b.Dx()/(2*out.X)
			copy(dst.Pix[dst.PixOffset(x, y):dst.PixOffset(x, y)+4], src.Pix[src.PixOffset(sx, sy):])
		}
	}
	return dst
}

func writePNGAtomic(path string, img image.Image) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	err = png.Encode(tmp, img)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		// CreateTemp makes 0600 files; a picture is for people to look at.
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
