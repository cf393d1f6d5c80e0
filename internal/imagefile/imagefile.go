package imagefile

import (
	"errors"
	"fmt"
	"image"
	_ "image/gif" // the formats dl4img reads
	_ "image/jpeg"
	_ "image/png"
	"io"

	_ "golang.org/x/image/bmp"
)

// MaxPixels is the largest width×height decoded: 64 Mpixels (8192×8192),
// far above any competition image or photo (a whole-slide image is read
// region by region through GDAL instead), and at most 256 MB as RGBA.
const MaxPixels = 1 << 26

// ErrTooLarge marks an image whose declared size is over MaxPixels.
var ErrTooLarge = errors.New("image too large")

// CheckSize refuses a declared size over MaxPixels.
func CheckSize(w, h int) error {
	if w > 0 && h > 0 && w <= MaxPixels && h <= MaxPixels && int64(w)*int64(h) <= MaxPixels {
		return nil
	}
	return fmt.Errorf("%w: it declares %dx%d pixels, more than the %d dl4img decodes (a decompression bomb?)",
		ErrTooLarge, w, h, MaxPixels)
}

// Decode reads the header, checks the declared size, then decodes.
func Decode(r io.ReadSeeker) (image.Image, string, error) {
	cfg, format, err := image.DecodeConfig(r)
	if err != nil {
		return nil, "", err
	}
	if err := CheckSize(cfg.Width, cfg.Height); err != nil {
		return nil, format, err
	}
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, format, err
	}
	img, format, err := image.Decode(r)
	if err != nil {
		return nil, format, err
	}
	// A decoder may disagree with its own header; the checked size is
	// what callers rely on.
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return nil, format, fmt.Errorf("decoded %dx%d pixels, its header declares %dx%d", b.Dx(), b.Dy(), cfg.Width, cfg.Height)
	}
	return img, format, nil
}
