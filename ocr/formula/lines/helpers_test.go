package lines

import (
	"fmt"
	"image"
	"testing"

	"github.com/dl4img/dl4img/ocr/formula/synth"
)

var sprintf = fmt.Sprintf

func testGenerator(t testing.TB) *synth.Generator {
	t.Helper()
	g, err := synth.NewGenerator(synth.Config{Seed: 42})
	if err != nil {
		t.Skipf("formula fonts unavailable: %v", err)
	}
	return g
}

// paint sets the pixels of the rectangles to v.
func paint(m *image.Gray, v uint8, rs ...image.Rectangle) {
	for _, r := range rs {
		for y := r.Min.Y; y < r.Max.Y; y++ {
			for x := r.Min.X; x < r.Max.X; x++ {
				m.Pix[y*m.Stride+x] = v
			}
		}
	}
}
