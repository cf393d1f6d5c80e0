package transfer

import (
	"context"

	"encoding/json"
	"fmt"
	"github.com/gomlx/gomlx/ml/model"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"path/filepath"

	"github.com/gomlx/gomlx/core/tensors"

	"github.com/dl4img/dl4img/tasks"
)

// CAM is a class activation map: the last conv feature map weighted by the
// head's weights of one class (Zhou et al. 2016), on the map's grid.
type CAM struct {
	H, W   int
	Values []float32 // row-major, normalized to [0,1]
}

// ComputeCAM weights fmap [h, w, c] (NHWC of one image) by weights [c].
func ComputeCAM(fmap []float32, h, w, c int, weights []float32) CAM {
	vals := make([]float32, h*w)
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for i := range h * w {
		var s float32
		for k := range c {
			s += fmap[i*c+k] * weights[k]
		}
		vals[i] = s
		lo, hi = min(lo, s), max(hi, s)
	}
	for i := range vals {
		if hi > lo {
			vals[i] = (vals[i] - lo) / (hi - lo)
		} else {
			vals[i] = 0
		}
	}
	return CAM{H: h, W: w, Values: vals}
}

// at samples the map bilinearly at (x, y) in [0,1]² (pixel centers).
func (m CAM) at(x, y float64) float64 {
	fx, fy := x*float64(m.W)-0.5, y*float64(m.H)-0.5
	x0, y0 := int(math.Floor(fx)), int(math.Floor(fy))
	ax, ay := fx-float64(x0), fy-float64(y0)
	get := func(i, j int) float64 {
		i = min(max(i, 0), m.W-1)
		j = min(max(j, 0), m.H-1)
		return float64(m.Values[j*m.W+i])
	}
	return (1-ay)*((1-ax)*get(x0, y0)+ax*get(x0+1, y0)) + ay*((1-ax)*get(x0, y0+1)+ax*get(x0+1, y0+1))
}

// jet is the usual blue→cyan→yellow→red heat colormap.
func jet(v float64) (r, g, b float64) {
	f := func(x float64) float64 { return math.Max(0, math.Min(1, x)) }
	return f(1.5 - math.Abs(4*v-3)), f(1.5 - math.Abs(4*v-2)), f(1.5 - math.Abs(4*v-1))
}

// Overlay draws the map, upsampled, over img at opacity alpha.
func Overlay(img image.Image, m CAM, alpha float64) *image.RGBA {
	src := toRGBA(img)
	b := src.Bounds()
	out := image.NewRGBA(b)
	for y := range b.Dy() {
		for x := range b.Dx() {
			v := m.at((float64(x)+0.5)/float64(b.Dx()), (float64(y)+0.5)/float64(b.Dy()))
			hr, hg, hb := jet(v)
			c := src.RGBAAt(b.Min.X+x, b.Min.Y+y)
			mix := func(p uint8, q float64) uint8 {
				return uint8(math.Round((1-alpha)*float64(p) + alpha*255*q))
			}
			out.SetRGBA(b.Min.X+x, b.Min.Y+y, color.RGBA{mix(c.R, hr), mix(c.G, hg), mix(c.B, hb), 255})
		}
	}
	return out
}

// camTask draws CAMs of the first backbone for a few test (else
// validation) images, as PNG artifacts cam/<id>_<class>_<percent>.png.
func camTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	name := "test"
	fs, err := readFeatureSet(featurePath(env, "test"))
	if err != nil {
		name = "validation"
		if fs, err = readFeatureSet(featurePath(env, "train")); err != nil {
			return fmt.Errorf("features: %w", err)
		}
		val, _ := SplitVal(len(fs.Items), p.ValFraction, p.Seed)
		var items []Item
		var feats [][]float32
		for _, i := range val {
			items = append(items, fs.Items[i])
			if len(fs.Feats) > 0 {
				feats = append(feats, fs.Feats[i])
			}
		}
		fs.Items, fs.Feats = items, feats
	}
	backend, err := env.Backend()
	if err != nil {
		return err
	}
	// The network whose last conv map is drawn, with its final weights.
	var net featureNet
	var st *model.Store
	if p.scratch() {
		pre, err := p.preprocess(0)
		if err != nil {
			return err
		}
		if st, err = loadScratch(env); err != nil {
			return err
		}
		net = scratchNet{pre}
	} else {
		bbs, err := loadBackbones(env, &Params{Common: p.Common, Backbone: p.Backbone[:1],
			BackbonePreset: p.BackbonePreset[:1], FeatureNode: firstOr(p.FeatureNode),
			InputSize: p.InputSize, Resize: p.Resize, Normalize: p.Normalize})
		if err != nil {
			return err
		}
		bb := bbs[0]
		if !bb.HasMap() {
			env.Logf("cam: backbone %s: the conv map under the cut is unknown; no CAM", bb.Name())
			return nil
		}
		if p.FinetuneLayers > 0 {
			if err := tasks.LoadWeights(bb.store, headDir(env, p)); err != nil {
				return fmt.Errorf("fine-tuned backbone: %w", err)
			}
		}
		net, st = bb, bb.store
	}
	exec, err := model.NewExec(backend, st, net.mapGraph)
	if err != nil {
		return err
	}
	var pred *Predictor
	var W, inv []float32
	h := Head{Classes: len(fs.Classes), Dropout: p.Dropout}
	done := 0
	for i, it := range fs.Items {
		if done >= p.CAMImages {
			break
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		img, err := decodeImage(it.Path)
		if err != nil {
			continue // reported by the features task
		}
		pre := net.preprocess()
		x := pre.tensorHWC(pre.resized(img))
		feats, maps, err := callMap(exec, batchTensor(pre.Size, [][]float32{x}))
		if err != nil {
			return err
		}
		// With one backbone the prediction comes from these very features
		// (fine-tuned or not); with several, from the cached concatenation.
		row := feats
		if len(p.Backbone) > 1 {
			if len(fs.Feats) <= i || len(fs.Feats[i]) == 0 {
				continue
			}
			row = fs.Feats[i]
		}
		if pred == nil {
			h.Dim = len(row)
			var hst *model.Store
			if pred, hst, err = loadHead(env, p, h); err != nil {
				return err
			}
			if W, inv, err = headWeights(h, hst); err != nil {
				return err
			}
		}
		pr, err := pred.Probs([][]float32{row}, []int{0})
		if err != nil {
			return err
		}
		prob := pr[0]
		d := maps.Shape().Dimensions
		mh, mw, c := d[1], d[2], d[3]
		cls := argmax(prob)
		weights := make([]float32, c)
		for j := range c {
			if h.Units() == 1 {
				weights[j] = W[j] * inv[j]
				if cls == 0 {
					weights[j] = -weights[j]
				}
			} else {
				weights[j] = W[j*h.Units()+cls] * inv[j]
			}
		}
		cam := ComputeCAM(tensors.MustCopyFlatData[float32](maps), mh, mw, c, weights)
		id := it.ID
		if id == "" {
			id = filepath.Base(it.Path)
			id = id[:len(id)-len(filepath.Ext(id))]
		}
		path := filepath.Join(env.JobDir(), "cam", fmt.Sprintf("%s_%s_%.0f.png", id, fs.Classes[cls], 100*prob[cls]))
		ov := Overlay(displaySize(img), cam, 0.45)
		if err := tasks.WriteFileAtomic(path, func(w io.Writer) error { return png.Encode(w, ov) }); err != nil {
			return err
		}
		if err := env.Artifact("cam", path); err != nil {
			return err
		}
		done++
		env.Progress("cam "+name, done, p.CAMImages)
	}
	return nil
}

// callMap runs the map graph: features [1, dim] (as a row) and the map.
func callMap(exec *model.Exec, x *tensors.Tensor) (feats []float32, maps *tensors.Tensor, err error) {
	defer recoverErr(&err, "feature map")
	f, m, err := exec.Call2(x)
	if err != nil {
		return nil, nil, err
	}
	fl := tensors.MustCopyFlatData[float32](f)
	return fl, m, nil
}

// headWeights returns the head's dense weights [dim, units] and the
// features' 1/std (the head standardizes its input, so a raw feature's
// weight is w/std; the mean only shifts the map, which is normalized).
func headWeights(h Head, st *model.Store) (W, inv []float32, err error) {
	wv, _ := h.vars(st.RootScope())
	wt, err := wv.Value()
	if err != nil {
		return nil, nil, err
	}
	_, iv := h.norm(st.RootScope())
	it, err := iv.Value()
	if err != nil {
		return nil, nil, err
	}
	return tensors.MustCopyFlatData[float32](wt), tensors.MustCopyFlatData[float32](it), nil
}

func firstOr(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s[:1]
}

func argmax(p []float64) int {
	best := 0
	for k := range p {
		if p[k] > p[best] {
			best = k
		}
	}
	return best
}

// displaySize scales small images up (and big ones down) to ~256 px so the
// overlay is visible.
func displaySize(img image.Image) image.Image {
	b := img.Bounds()
	side := max(b.Dx(), b.Dy())
	if side >= 128 && side <= 512 {
		return img
	}
	scale := 256 / float64(side)
	w, h := max(1, int(float64(b.Dx())*scale)), max(1, int(float64(b.Dy())*scale))
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	scaleInto(dst, img)
	return dst
}
