package transfer

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"os"
	"sort"
	"strings"

	"golang.org/x/image/draw"

	"github.com/dl4img/dl4img/internal/imagefile"
)

// Preprocess is how a backbone wants its pixels: the square input size, how
// an image of another size gets there, and how 0..255 values are scaled.
type Preprocess struct {
	Size int
	// Resize is "squash" (scale to Size×Size, as Keras' load_img does) or
	// "crop" (scale the shorter side to Size·256/224, then center-crop, as
	// torchvision's Resize(256)+CenterCrop(224) does).
	Resize string
	// Normalize is "imagenet" (x/255 then torchvision's mean/std), "tf"
	// (x/127.5-1, Keras' inception/xception/mobilenet), "caffe" (BGR minus
	// the ImageNet mean, Keras' resnet50/vgg) or "unit" (x/255).
	Normalize string
}

// BackbonePresets are the preprocessing of the common exports; the names
// say which library the ONNX file was exported from.
var BackbonePresets = map[string]Preprocess{
	"resnet50-torchvision":    {224, "crop", "imagenet"},
	"mobilenetv2-torchvision": {224, "crop", "imagenet"},
	"inceptionv3-torchvision": {299, "crop", "imagenet"},
	"resnet50-keras":          {224, "squash", "caffe"},
	"vgg16-keras":             {224, "squash", "caffe"},
	"inceptionv3-keras":       {299, "squash", "tf"},
	"xception-keras":          {299, "squash", "tf"},
	"mobilenetv2-keras":       {224, "squash", "tf"},
	// The committed test fixture (testdata/transfer/tinycnn.onnx).
	"tinycnn": {64, "squash", "imagenet"},
}

// PresetNames lists BackbonePresets, sorted.
func PresetNames() []string {
	var n []string
	for k := range BackbonePresets {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func (p Preprocess) validate() error {
	switch {
	case p.Size < 8:
		return fmt.Errorf("input_size %d: must be >= 8", p.Size)
	case p.Resize != "squash" && p.Resize != "crop":
		return fmt.Errorf("resize %q: want squash or crop", p.Resize)
	}
	switch p.Normalize {
	case "imagenet", "tf", "caffe", "unit":
		return nil
	}
	return fmt.Errorf("normalize %q: want imagenet, tf, caffe or unit", p.Normalize)
}

// ErrNotImage marks files that do not decode as an image.
var ErrNotImage = errors.New("not an image")

// decodeImage reads a JPEG or PNG file.
func decodeImage(path string) (image.Image, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	img, _, err := imagefile.Decode(bytes.NewReader(b))
	if errors.Is(err, imagefile.ErrTooLarge) {
		return nil, err
	}
	if err != nil {
		return nil, ErrNotImage
	}
	if r := img.Bounds(); r.Dx() < 1 || r.Dy() < 1 {
		return nil, ErrNotImage
	}
	return img, nil
}

// resized scales img as p says, to p.Size×p.Size RGBA.
func (p Preprocess) resized(img image.Image) *image.RGBA {
	b := img.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, p.Size, p.Size))
	if b.Dx() == p.Size && b.Dy() == p.Size {
		draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Src)
		return dst
	}
	src := b
	if p.Resize == "crop" {
		// Scale the shorter side to Size·256/224 and crop the center Size,
		// i.e. take the center square of side short·224/256 of the source.
		short := min(b.Dx(), b.Dy())
		side := max(1, short*224/256)
		x0 := b.Min.X + (b.Dx()-side)/2
		y0 := b.Min.Y + (b.Dy()-side)/2
		src = image.Rect(x0, y0, x0+side, y0+side)
	}
	draw.BiLinear.Scale(dst, dst.Bounds(), img, src, draw.Src, nil)
	return dst
}

var (
	imagenetMean = [3]float32{0.485, 0.456, 0.406}
	imagenetStd  = [3]float32{0.229, 0.224, 0.225}
	caffeMean    = [3]float32{103.939, 116.779, 123.68} // BGR
)

// tensorHWC converts a Size×Size RGBA image to normalized float32 in HWC
// order (the graph transposes to NCHW where the model wants it).
func (p Preprocess) tensorHWC(img *image.RGBA) []float32 {
	n := p.Size
	out := make([]float32, n*n*3)
	for y := range n {
		for x := range n {
			c := img.RGBAAt(x, y)
			rgb := [3]float32{float32(c.R), float32(c.G), float32(c.B)}
			o := out[(y*n+x)*3:]
			for k := range 3 {
				switch p.Normalize {
				case "imagenet":
					o[k] = (rgb[k]/255 - imagenetMean[k]) / imagenetStd[k]
				case "tf":
					o[k] = rgb[k]/127.5 - 1
				case "caffe":
					o[k] = rgb[2-k] - caffeMean[k]
				default:
					o[k] = rgb[k] / 255
				}
			}
		}
	}
	return out
}

// loadInput decodes, resizes and normalizes one image file.
func (p Preprocess) loadInput(path string) ([]float32, error) {
	img, err := decodeImage(path)
	if err != nil {
		return nil, err
	}
	return p.tensorHWC(p.resized(img)), nil
}

func toRGBA(img image.Image) *image.RGBA {
	if r, ok := img.(*image.RGBA); ok {
		return r
	}
	b := img.Bounds()
	dst := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(dst, dst.Bounds(), img, b.Min, draw.Src)
	return dst
}

// parsePreset resolves a backbone preset name.
func parsePreset(name string) (Preprocess, error) {
	p, ok := BackbonePresets[strings.TrimSpace(name)]
	if !ok {
		return p, fmt.Errorf("parameter backbone_preset: unknown preset %q (known: %s)", name, strings.Join(PresetNames(), ", "))
	}
	return p, nil
}

func scaleInto(dst *image.RGBA, src image.Image) {
	draw.BiLinear.Scale(dst, dst.Bounds(), src, src.Bounds(), draw.Src, nil)
}
