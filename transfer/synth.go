package transfer

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/dl4img/dl4img/tasks"
)

// Synthetic "cats vs dogs": a head-shaped blob on a noisy background;
// cats have striped (tabby) fur and pointed ears, dogs spotted fur and
// round floppy ears. Colors, orientation, position and size are random, so
// the texture is what tells them apart — what the fixture backbone was
// pretrained to see (stripes vs spots). It is a stand-in for real photos,
// which cannot be shipped.

// SynthImage draws one synthetic image of size×size; dog selects the class.
func SynthImage(rng *rand.Rand, size int, dog bool) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, size, size))
	s := float64(size)
	bg := [3]float64{rng.Float64(), rng.Float64(), rng.Float64()}
	fur1 := [3]float64{rng.Float64(), rng.Float64(), rng.Float64()}
	fur2 := [3]float64{rng.Float64() * 0.4, rng.Float64() * 0.4, rng.Float64() * 0.4}
	cx, cy := s*(0.45+0.1*rng.Float64()), s*(0.5+0.1*rng.Float64())
	r := s * (0.33 + 0.1*rng.Float64())
	angle := rng.Float64() * math.Pi
	freq := (0.25 + 0.3*rng.Float64()) * 64 / s
	phase := rng.Float64() * 6.3
	earDX, earDY := r*0.6, r*0.8
	inEar := func(x, y float64) bool {
		for _, side := range []float64{-1, 1} {
			ex, ey := cx+side*earDX, cy-earDY
			dx, dy := x-ex, y-ey
			if dog {
				// floppy ears: discs hanging beside the head
				if dx*dx+(dy-r*0.5)*(dy-r*0.5) < (r*0.35)*(r*0.35) {
					return true
				}
			} else if dy < 0 && dy > -r*0.55 && math.Abs(dx) < (dy+r*0.55)*0.6 {
				// pointed ears: triangles above the head
				return true
			}
		}
		return false
	}
	for y := range size {
		for x := range size {
			fx, fy := float64(x)+0.5, float64(y)+0.5
			dx, dy := (fx-cx)/r, (fy-cy)/(r*0.9)
			c := bg
			if dx*dx+dy*dy < 1 || inEar(fx, fy) {
				u := freq * (fx*math.Cos(angle) + fy*math.Sin(angle))
				w := math.Sin(u + phase)
				if dog {
					w *= math.Sin(freq * (fx*math.Sin(angle) - fy*math.Cos(angle)))
				}
				c = fur1
				if w > 0 {
					c = fur2
				}
			}
			var px [3]uint8
			for k := range 3 {
				v := c[k] + rng.NormFloat64()*0.06
				px[k] = uint8(math.Round(255 * math.Min(1, math.Max(0, v))))
			}
			img.SetRGBA(x, y, color.RGBA{px[0], px[1], px[2], 255})
		}
	}
	return img
}

// GenerateSynth writes a Kaggle-layout set: dir/train/{cat,dog}.<n>.png
// (perClass of each) and dir/test/<n>.png (test images, half dogs), plus
// dir/test_labels.csv (id,label with 1 = dog) to score a submission.
func GenerateSynth(ctx context.Context, dir string, perClass, test, size int, seed int64, progress func(done, total int)) error {
	rng := rand.New(rand.NewPCG(uint64(seed), 0xca75d095))
	total := 2*perClass + test
	done := 0
	write := func(path string, img image.Image) error {
		return tasks.WriteFileAtomic(path, func(w io.Writer) error { return png.Encode(w, img) })
	}
	for _, d := range []string{"train", "test"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for i := range 2 * perClass {
		if err := ctx.Err(); err != nil {
			return err
		}
		dog := i%2 == 1
		name := fmt.Sprintf("cat.%d.png", i/2)
		if dog {
			name = fmt.Sprintf("dog.%d.png", i/2)
		}
		if err := write(filepath.Join(dir, "train", name), SynthImage(rng, size, dog)); err != nil {
			return err
		}
		done++
		if progress != nil {
			progress(done, total)
		}
	}
	labels := "id,label\n"
	for i := range test {
		if err := ctx.Err(); err != nil {
			return err
		}
		dog := rng.IntN(2) == 1
		if err := write(filepath.Join(dir, "test", fmt.Sprintf("%d.png", i+1)), SynthImage(rng, size, dog)); err != nil {
			return err
		}
		l := 0
		if dog {
			l = 1
		}
		labels += fmt.Sprintf("%d,%d\n", i+1, l)
		done++
		if progress != nil {
			progress(done, total)
		}
	}
	return tasks.WriteFileAtomic(filepath.Join(dir, "test_labels.csv"), func(w io.Writer) error {
		_, err := io.WriteString(w, labels)
		return err
	})
}

func encodePNG(w io.Writer, img image.Image) error { return png.Encode(w, img) }
