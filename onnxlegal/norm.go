package onnxlegal

import "math"

// Normalizations the import lacks, in element-wise ops and reductions.

func init() {
	rewrites["LRN"] = lrn
	rewrites["InstanceNormalization"] = instanceNorm
}

// lrn implements LRN-13 (and -1): y = x / (bias + alpha/size · Σ x²)^beta,
// the sum over channels c − ⌊(size−1)/2⌋ … c + ⌈(size−1)/2⌉. The squares
// are zero-padded along the channel axis and the window is a sum of size
// Slices of it, so no channel count is needed.
func lrn(e *emit) (string, error) {
	n := e.n
	size := n.Int("size", 0)
	if size < 1 {
		return "", e.unsupported("attribute size=%d", size)
	}
	x := e.l.shapes[n.Inputs[0]]
	if len(x) < 3 {
		return "", e.unsupported("the input's rank is unknown or below 3")
	}
	r := len(x)
	lo, hi := (size-1)/2, size-1-(size-1)/2
	pads := make([]int64, 2*r)
	pads[1], pads[r+1] = lo, hi
	sq, err := e.pad(e.op("Mul", []string{n.Inputs[0], n.Inputs[0]}), pads, 0)
	if err != nil {
		return "", err
	}
	var sum string
	for i := range size {
		end := int64(math.MaxInt64)
		if back := size - 1 - i; back > 0 {
			end = -back
		}
		s := e.slice(sq, []int64{i}, []int64{end}, []int64{1}, []int64{1})
		if sum == "" {
			sum = s
		} else {
			sum = e.op("Add", []string{sum, s})
		}
	}
	alpha, beta, bias := float64(n.Float("alpha", 1e-4)), float64(n.Float("beta", 0.75)), float64(n.Float("bias", 1))
	den := e.op("Add", []string{e.op("Mul", []string{sum, e.scalar(alpha / float64(size))}), e.scalar(bias)})
	e.final("Div", []string{n.Inputs[0], e.op("Pow", []string{den, e.scalar(beta)})})
	return "→ channel-window sum of squares, Pow, Div", nil
}

// instanceNorm implements InstanceNormalization-6 (and -1):
// y = scale · (x − mean) / sqrt(var + epsilon) + B, mean and (biased)
// variance over the spatial axes of each image and channel.
func instanceNorm(e *emit) (string, error) {
	n := e.n
	x := e.l.shapes[n.Inputs[0]]
	if len(x) < 3 {
		return "", e.unsupported("the input's rank is unknown or below 3")
	}
	var axes []int64
	perChannel := []int64{-1}
	for i := 2; i < len(x); i++ {
		axes = append(axes, int64(i))
		perChannel = append(perChannel, 1)
	}
	mean := e.op("ReduceMean", n.Inputs[:1], intsAttr("axes", axes...), intAttr("keepdims", 1))
	d := e.op("Sub", []string{n.Inputs[0], mean})
	v := e.op("ReduceMean", []string{e.op("Mul", []string{d, d})}, intsAttr("axes", axes...), intAttr("keepdims", 1))
	std := e.op("Sqrt", []string{e.op("Add", []string{v, e.scalar(float64(n.Float("epsilon", 1e-5)))})})
	y := e.op("Mul", []string{e.op("Div", []string{d, std}), e.reshape(n.Inputs[1], perChannel...)})
	e.final("Add", []string{y, e.reshape(n.Inputs[2], perChannel...)})
	return "→ ReduceMean, Sub, Div, scale and shift", nil
}
