package onnxlegal

import (
	"fmt"
	"math"
)

// Resize and Upsample with constant scales or sizes. The import has a
// Resize, but it reads every cubic resize as bilinear, ignores
// nearest_mode and exclude_outside, and has no Upsample. Interpolation
// along one axis is linear in the input, so each resized axis becomes a
// MatMul with a constant matrix built here from the ONNX definition
// (coordinate transformation, nearest rounding, linear and cubic
// weights); a nearest resize by a whole factor becomes a Reshape and
// Expand (repetition), which costs no arithmetic.

func init() {
	rewrites["Resize"] = resize
	rewrites["Upsample"] = resize
}

// resizePlan is a Resize's per-axis geometry.
type resizePlan struct {
	in, out []int64
	scales  []float64
	mode    string
	coord   string
	nearest string
	cubicA  float64
	exclude bool
}

// resizePlan reads Resize-19 (and -10, -11, -13, -18 without antialias
// and axes) and Upsample-9 (and -7): its output size and attributes.
// Resize-10 and Upsample use asymmetric coordinates and onnxruntime's
// "simple" nearest rounding (truncate when enlarging, ceil when
// shrinking).
func (l *legalizer) resizePlan(n *Node) (*resizePlan, error) {
	x := l.inShape(n, 0)
	if x == nil || !known(x[1:]) {
		return nil, fmt.Errorf("needs the input's size, which is unknown here (%s)", dimsString(x))
	}
	p := &resizePlan{in: x, mode: n.String("mode", "nearest"), coord: n.String("coordinate_transformation_mode", "half_pixel"),
		nearest: n.String("nearest_mode", "round_prefer_floor"), cubicA: float64(n.Float("cubic_coeff_a", -0.75)),
		exclude: n.Int("exclude_outside", 0) != 0}
	old := n.Op == "Upsample" || l.m.Opset < 11
	if old {
		p.coord, p.nearest = "asymmetric", "simple"
	}
	if n.Int("antialias", 0) != 0 {
		return nil, fmt.Errorf("attribute antialias=1 is not supported")
	}
	if n.Attr("axes") != nil {
		return nil, fmt.Errorf("attribute axes is not supported")
	}
	if k := n.String("keep_aspect_ratio_policy", "stretch"); k != "stretch" {
		return nil, fmt.Errorf("attribute keep_aspect_ratio_policy=%s is not supported", k)
	}
	var scales []float64
	var sizes []int64
	switch {
	case n.Attr("scales") != nil:
		for _, f := range n.Attr("scales").Floats {
			scales = append(scales, float64(f))
		}
	case old:
		v := l.inValue(n, 1)
		if !v.complete() {
			return nil, fmt.Errorf("scales are not constant")
		}
		scales = v.floats()
	default:
		if v := l.inValue(n, 3); v != nil && len(v.ints()) > 0 {
			// Unknown entries (the batch, read from the input's Shape)
			// are checked per axis below.
			sizes = v.ints()
		} else if v := l.inValue(n, 2); v.complete() && len(v.floats()) > 0 {
			scales = v.floats()
		} else {
			return nil, fmt.Errorf("neither scales nor sizes are constant")
		}
	}
	if len(scales)+len(sizes) != len(x) {
		return nil, fmt.Errorf("%d scales or sizes for an input of rank %d", len(scales)+len(sizes), len(x))
	}
	p.out, p.scales = make([]int64, len(x)), make([]float64, len(x))
	for i := range x {
		if sizes != nil {
			p.out[i] = sizes[i]
			if sizes[i] == unknownDim {
				// From the input's own Shape (the unknown batch): kept.
				p.out[i], p.scales[i] = x[i], 1
				continue
			}
			if x[i] > 0 {
				p.scales[i] = float64(sizes[i]) / float64(x[i])
			}
		} else {
			p.scales[i] = scales[i]
			if x[i] >= 0 {
				p.out[i] = int64(math.Floor(float64(x[i]) * scales[i]))
			} else {
				p.out[i] = -1
			}
		}
	}
	return p, nil
}

// source maps output coordinate o of an axis to the input coordinate.
func (p *resizePlan) source(o, in, out int64, scale float64) (float64, error) {
	x := float64(o)
	switch p.coord {
	case "half_pixel":
		return (x+0.5)/scale - 0.5, nil
	case "half_pixel_symmetric":
		adj := float64(out) / (scale * float64(in))
		center := float64(in) / 2
		return center*(1-adj) + (x+0.5)/scale - 0.5, nil
	case "pytorch_half_pixel":
		if out > 1 {
			return (x+0.5)/scale - 0.5, nil
		}
		return 0, nil
	case "align_corners":
		if out == 1 {
			return 0, nil
		}
		return x * float64(in-1) / float64(out-1), nil
	case "asymmetric":
		return x / scale, nil
	case "tf_half_pixel_for_nn":
		return (x + 0.5) / scale, nil
	}
	return 0, fmt.Errorf("attribute coordinate_transformation_mode=%s is not supported", p.coord)
}

// nearestIndex rounds a source coordinate by nearest_mode.
func (p *resizePlan) nearestIndex(x float64, shrink bool) (int64, error) {
	var r float64
	switch p.nearest {
	case "round_prefer_floor":
		if x-math.Floor(x) == 0.5 {
			r = math.Floor(x)
		} else {
			r = math.Round(x)
		}
	case "round_prefer_ceil":
		if x-math.Floor(x) == 0.5 {
			r = math.Ceil(x)
		} else {
			r = math.Round(x)
		}
	case "floor":
		r = math.Floor(x)
	case "ceil":
		r = math.Ceil(x)
	case "simple":
		if shrink {
			r = math.Ceil(x)
		} else {
			r = math.Trunc(x)
		}
	default:
		return 0, fmt.Errorf("attribute nearest_mode=%s is not supported", p.nearest)
	}
	return int64(r), nil
}

// matrix is the [out][in] interpolation matrix of axis i.
func (p *resizePlan) matrix(i int) ([][]float64, error) {
	in, out, scale := p.in[i], p.out[i], p.scales[i]
	m := make([][]float64, out)
	clamp := func(k int64) int64 { return max(0, min(k, in-1)) }
	for o := range out {
		m[o] = make([]float64, in)
		x, err := p.source(o, in, out, scale)
		if err != nil {
			return nil, err
		}
		switch p.mode {
		case "nearest":
			k, err := p.nearestIndex(x, scale < 1)
			if err != nil {
				return nil, err
			}
			m[o][clamp(k)] = 1
		case "linear", "bilinear":
			x0 := math.Floor(x)
			t := x - x0
			m[o][clamp(int64(x0))] += 1 - t
			m[o][clamp(int64(x0)+1)] += t
		case "cubic", "bicubic":
			x0 := math.Floor(x)
			t := x - x0
			a := p.cubicA
			w := []float64{
				((a*(t+1)-5*a)*(t+1)+8*a)*(t+1) - 4*a,
				((a+2)*t-(a+3))*t*t + 1,
				((a+2)*(1-t)-(a+3))*(1-t)*(1-t) + 1,
				((a*(2-t)-5*a)*(2-t)+8*a)*(2-t) - 4*a,
			}
			sum := 0.0
			for j, wj := range w {
				k := int64(x0) - 1 + int64(j)
				if p.exclude && (k < 0 || k >= in) {
					continue
				}
				m[o][clamp(k)] += wj
				sum += wj
			}
			if p.exclude && sum != 0 {
				for k := range m[o] {
					m[o][k] /= sum
				}
			}
		default:
			return nil, fmt.Errorf("attribute mode=%s is not supported", p.mode)
		}
	}
	return m, nil
}

func isIdentity(m [][]float64) bool {
	if len(m) != len(m[0]) {
		return false
	}
	for o, row := range m {
		for k, v := range row {
			if (o == k) != (v == 1) || (o != k && v != 0) {
				return false
			}
		}
	}
	return true
}

// repeatFactor is s when row o of m picks input o/s, else 0.
func repeatFactor(m [][]float64) int64 {
	out, in := int64(len(m)), int64(len(m[0]))
	if out%in != 0 {
		return 0
	}
	s := out / in
	for o, row := range m {
		if row[int64(o)/s] != 1 {
			return 0
		}
		for _, v := range row {
			if v != 0 && v != 1 {
				return 0
			}
		}
	}
	return s
}

func resize(e *emit) (string, error) {
	p, err := e.l.resizePlan(e.n)
	if err != nil {
		return "", e.unsupported("%v", err)
	}
	if p.coord == "tf_crop_and_resize" {
		return "", e.unsupported("attribute coordinate_transformation_mode=tf_crop_and_resize is not supported")
	}
	r := len(p.in)
	mats := make([][][]float64, r)
	factors := make([]int64, r)
	repeat := true
	for i := range r {
		if p.in[i] < 0 { // the batch, unknown
			if p.scales[i] != 1 {
				return "", e.unsupported("resizing an axis of unknown size is not supported (input %s)", dimsString(p.in))
			}
			continue
		}
		if p.out[i] < 1 {
			return "", e.unsupported("output size %d on axis %d", p.out[i], i)
		}
		m, err := p.matrix(i)
		if err != nil {
			return "", e.unsupported("%v", err)
		}
		if isIdentity(m) {
			continue
		}
		if i < 2 && r > 2 {
			return "", e.unsupported("resizing the batch or channel axis is not supported")
		}
		mats[i] = m
		factors[i] = repeatFactor(m)
		repeat = repeat && factors[i] > 0
	}
	y := e.n.Inputs[0]
	if repeat {
		split, grow, merged := []int64{0, 0}, []int64{1, 1}, []int64{0, 0}
		for i := 2; i < r; i++ {
			f := max(1, factors[i])
			split, grow, merged = append(split, p.in[i], 1), append(grow, 1, f), append(merged, p.in[i]*f)
		}
		e.finish(e.reshape(e.op("Expand", []string{e.reshape(y, split...), e.ints64(grow...)}), merged...))
		return "nearest by whole factors → Reshape, Expand, Reshape", nil
	}
	for i := r - 1; i >= 2; i-- {
		m := mats[i]
		if m == nil {
			continue
		}
		out, in := int64(len(m)), int64(len(m[0]))
		flat := make([]float64, 0, out*in)
		switch {
		case i == r-1: // y · Mᵀ
			for k := range in {
				for o := range out {
					flat = append(flat, m[o][k])
				}
			}
			y = e.op("MatMul", []string{y, e.floats([]int64{in, out}, flat...)})
		case i == r-2: // M · y
			for _, row := range m {
				flat = append(flat, row...)
			}
			y = e.op("MatMul", []string{e.floats([]int64{out, in}, flat...), y})
		default: // move the axis last, y · Mᵀ, move it back
			perm := make([]int64, r)
			for k := range perm {
				perm[k] = int64(k)
			}
			perm[i], perm[r-1] = int64(r-1), int64(i)
			for k := range in {
				for o := range out {
					flat = append(flat, m[o][k])
				}
			}
			y = e.transpose(e.op("MatMul", []string{e.transpose(y, perm...), e.floats([]int64{in, out}, flat...)}), perm...)
		}
	}
	e.finish(y)
	return fmt.Sprintf("mode=%s → MatMul by constant interpolation matrices", p.mode), nil
}
