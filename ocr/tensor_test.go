package ocr

import (
	"image"
	"image/color"
	"testing"
)

func TestImageToFloat32(t *testing.T) {
	rgba := image.NewRGBA(image.Rect(0, 0, 3, 2))
	rgba.SetRGBA(2, 1, color.RGBA{255, 51, 0, 255})
	// The same picture as NRGBA with a non-zero origin takes the slow path.
	nrgba := image.NewNRGBA(image.Rect(5, 5, 8, 7))
	nrgba.SetNRGBA(7, 6, color.NRGBA{255, 51, 0, 255})
	for _, img := range []image.Image{rgba, nrgba, rgba.SubImage(image.Rect(0, 0, 3, 2))} {
		dst := make([]float32, 18)
		if err := ImageToFloat32(img, dst); err != nil {
			t.Fatal(err)
		}
		want := []float32{1, 0.2, 0}
		for k := range 3 {
			if d := dst[15+k] - want[k]; d > 1e-6 || d < -1e-6 {
				t.Errorf("%T pixel (2,1) channel %d = %v, want %v", img, k, dst[15+k], want[k])
			}
		}
		for i := range 15 {
			if dst[i] != 0 {
				t.Errorf("%T value %d = %v, want 0", img, i, dst[i])
			}
		}
	}
	if err := ImageToFloat32(rgba, make([]float32, 5)); err == nil {
		t.Error("short dst accepted")
	}
}
