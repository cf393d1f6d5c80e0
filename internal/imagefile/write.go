package imagefile

import (
	"image"
	"image/png"
	"io"

	"github.com/dl4img/dl4img/internal/atomicfile"
)

// WritePNG writes img as a PNG file, atomically and not durably (datasets
// hold thousands). fast picks the fastest compression level: several times
// cheaper to encode, files a few percent larger, the same pixels.
func WritePNG(path string, img image.Image, fast bool) error {
	enc := png.Encoder{}
	if fast {
		enc.CompressionLevel = png.BestSpeed
	}
	return atomicfile.Write(path, false, func(w io.Writer) error { return enc.Encode(w, img) })
}
