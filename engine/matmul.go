//go:build !nodnnl

package engine

import (
	"slices"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/dtypes"

	"github.com/dl4img/dl4img/engine/dnnl"
)

// minMatMul is the smallest matmul (multiply-adds) worth a step of its
// own: below it the Go backend's loop costs less than cutting its segment.
const minMatMul = 1 << 15

// dotKernel maps a DotGeneral node to oneDNN's matmul: its batch axes,
// the lhs' free axes, the contracted axes and the rhs' free axes become
// (B, M, K, N). Each group must be read with one stride (axes adjacent and
// in order, as row-major tensors keep them); the result is GoMLX's
// [batch..., lhs free..., rhs free...].
func (b *backend) dotKernel(n *node) (*placed, string) {
	lhs, rhs, out := n.inputs[0].shape, n.inputs[1].shape, n.outs[0].shape
	if lhs.DType != dtypes.Float32 || rhs.DType != dtypes.Float32 || out.DType != dtypes.Float32 {
		return nil, "not float32"
	}
	if cfg := n.args[4].(compute.DotGeneralConfig); (cfg.AccumulatorDType != dtypes.InvalidDType &&
		cfg.AccumulatorDType != dtypes.Float32) || (cfg.OutputDType != dtypes.InvalidDType && cfg.OutputDType != dtypes.Float32) {
		return nil, "accumulator or output not float32"
	}
	lc, lb, rc, rb := n.args[0].([]int), n.args[1].([]int), n.args[2].([]int), n.args[3].([]int)
	lst, rst := rowMajor(lhs.Dimensions), rowMajor(rhs.Dimensions)
	free := func(rank int, used ...[]int) []int {
		var f []int
		for a := range rank {
			if !slices.Contains(used[0], a) && !slices.Contains(used[1], a) {
				f = append(f, a)
			}
		}
		return f
	}
	bs, bl, ok1 := group(lhs.Dimensions, lst, lb)
	_, br, ok2 := group(rhs.Dimensions, rst, rb)
	m, ml, ok3 := group(lhs.Dimensions, lst, free(lhs.Rank(), lc, lb))
	k, kl, ok4 := group(lhs.Dimensions, lst, lc)
	_, kr, ok5 := group(rhs.Dimensions, rst, rc)
	nn, nr, ok6 := group(rhs.Dimensions, rst, free(rhs.Rank(), rc, rb))
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return nil, "axes not mergeable into (batch, M, K, N)"
	}
	if m*k*nn < minMatMul {
		return nil, "" // small: stays in its segment, not counted as kept
	}
	s := dnnl.MatMulSpec{
		Src: dnnl.Tensor{Rank: 3, Dims: [5]int64{bs, m, k}, Strides: [5]int64{bl, ml, kl}},
		Wei: dnnl.Tensor{Rank: 3, Dims: [5]int64{bs, k, nn}, Strides: [5]int64{br, kr, nr}},
		Dst: dnnl.Tensor{Rank: 3, Dims: [5]int64{bs, m, nn}, Strides: [5]int64{m * nn, nn, 1}},
	}
	if bs == 1 {
		for _, t := range []*dnnl.Tensor{&s.Src, &s.Wei, &s.Dst} {
			t.Rank = 2
			t.Dims = [5]int64{t.Dims[1], t.Dims[2]}
			t.Strides = [5]int64{t.Strides[1], t.Strides[2]}
		}
	}
	op, err := b.lib.MatMul(s)
	if err != nil {
		return nil, "oneDNN: " + err.Error()
	}
	if why := reference(op); why != "" {
		return nil, why
	}
	return &placed{k: &argsKernel{lib: b.lib, op: op, label: "matmul", shapes: n.outShapes()}}, ""
}

// group reads the axes of a row-major tensor as one dimension: their
// sizes multiplied, and the stride of the innermost. Unit axes are
// skipped; the others must be adjacent and in order. No axes is a unit
// dimension.
func group(dims []int, strides []int64, axes []int) (size, stride int64, ok bool) {
	size, stride = 1, 1
	prev := -1
	for _, a := range axes {
		if dims[a] == 1 {
			continue
		}
		if prev >= 0 && strides[prev] != int64(dims[a])*strides[a] {
			return 0, 0, false
		}
		size *= int64(dims[a])
		stride = strides[a]
		prev = a
	}
	return size, stride, true
}
