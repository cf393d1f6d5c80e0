package ocr

import (
	"fmt"
	"image"
)

// ImageToFloat32 writes img as height×width×3 RGB values in [0, 1] into
// dst (len ≥ 3·w·h), the layout a channels-last model input takes. It has
// a fast path for the *image.RGBA images the generator returns.
func ImageToFloat32(img image.Image, dst []float32) error {
	b := img.Bounds()
	w, h := b.Dx(), b.Dy()
	if len(dst) < 3*w*h {
		return fmt.Errorf("image to float32: %dx%d image needs %d values, dst has %d", w, h, 3*w*h, len(dst))
	}
	const scale = 1.0 / 255
	if rgba, ok := img.(*image.RGBA); ok {
		for y := range h {
			row := rgba.Pix[(y)*rgba.Stride:]
			out := dst[3*y*w:]
			for x := range w {
				out[3*x] = float32(row[4*x]) * scale
				out[3*x+1] = float32(row[4*x+1]) * scale
				out[3*x+2] = float32(row[4*x+2]) * scale
			}
		}
		return nil
	}
	for y := range h {
		for x := range w {
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			i := 3 * (y*w + x)
			dst[i] = float32(r>>8) * scale
			dst[i+1] = float32(g>>8) * scale
			dst[i+2] = float32(bl>>8) * scale
		}
	}
	return nil
}
