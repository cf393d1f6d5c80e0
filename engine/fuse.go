//go:build !nodnnl

package engine

import (
	"math"
	"slices"

	"github.com/dl4img/dl4img/engine/dnnl"
	"github.com/gomlx/compute"
)

// fuse folds into each forward convolution the ops after it that oneDNN
// runs as part of it (TVM's conv2d+bias+relu patterns): a per-channel bias
// Add, an Add of a tensor of the output's shape (a residual: oneDNN's sum
// post-op) and a ReLU (Max with zero, and a Min with a constant after it:
// ReLU6), in that order (Identity ops are read through already:
// skipIdentities). Each folded op must be the only reader of the value
// before it, so nothing else needs the intermediate results; in training
// graphs that holds where the ReLU's gradient reads its output (nn.Relu
// does).
func (b *backend) fuse(f *function, kernels map[*node]*placed, live []bool) {
	readers := map[*value][]*node{}
	for _, n := range f.nodes {
		if live[n.index] {
			for _, in := range n.inputs {
				readers[in] = append(readers[in], n)
			}
		}
	}
	for _, v := range f.outputs {
		readers[v] = append(readers[v], nil) // an output: read outside
	}
	absorbed := map[*node]bool{} // each node joins one convolution at most
	sole := func(v *value) *node {
		if r := readers[v]; len(r) == 1 && r[0] != nil && !absorbed[r[0]] && kernels[r[0]] == nil {
			return r[0]
		}
		return nil
	}
	for conv, pk := range kernels {
		ck, ok := pk.k.(*convKernel)
		if !ok || ck.mode != dnnl.ConvForward || pk.in != nil {
			continue
		}
		spec := ck.spec
		cur, last := conv.outs[0], conv
		var bias, residual *value
		var path []*node // the nodes folded in
		for {
			next := sole(cur)
			if next == nil {
				break
			}
			other := func() *value {
				if next.inputs[0] == cur {
					return next.inputs[1]
				}
				return next.inputs[0]
			}
			switch {
			case next.op == "Add" && bias == nil && residual == nil && !spec.Relu && perChannel(other().shape.Dimensions, ck.channels):
				bias = other()
			case next.op == "Add" && residual == nil && !spec.Relu && other().shape.Equal(cur.shape):
				residual = other()
			case next.op == "Max" && !spec.Relu && isZero(other()):
				spec.Relu = true
			case next.op == "Min" && spec.Relu && spec.Clip == 0 && constant(other()) > 0:
				spec.Clip = constant(other()) // ReLU6, as ONNX's Clip(0, 6) imports
			default:
				goto done
			}
			cur, last = next.outs[0], next
			path = append(path, next)
		}
	done:
		if last == conv {
			continue
		}
		spec.Bias, spec.Sum = bias != nil, residual != nil
		op, err := b.lib.Conv(spec)
		if err != nil || reference(op) != "" {
			continue // the ops stay on Go; the convolution alone runs as planned
		}
		for _, n := range path {
			absorbed[n] = true
		}
		fused := *ck
		fused.op, fused.spec, fused.shape = op, spec, cur.shape
		in := []*value{conv.inputs[0], conv.inputs[1]}
		if bias != nil {
			in = append(in, bias)
		}
		if residual != nil {
			in = append(in, residual)
		}
		delete(kernels, conv)
		kernels[last] = &placed{k: &fused, in: in}
	}
}

// perChannel reports whether a tensor of dims holds one value per output
// channel in a row ([1, C, 1, 1], [1, 1, 1, C] or [C]): oneDNN's bias.
func perChannel(dims []int, channels int) bool {
	n := 0
	for _, d := range dims {
		if d != 1 {
			if d != channels || n > 0 {
				return false
			}
			n++
		}
	}
	return n == 1 || channels == 1
}

// isZero reports whether v is the constant 0.
func isZero(v *value) bool {
	c, ok := constantOf(v)
	return ok && c == 0
}

// constant is v's value if v is a float32 constant of one value, else NaN.
func constant(v *value) float32 {
	if c, ok := constantOf(v); ok {
		return c
	}
	return float32(math.NaN())
}

// constantOf returns the value of a float32 constant holding a single
// value (a scalar, a filled tensor, or a scalar broadcast).
func constantOf(v *value) (float32, bool) {
	n := v.node
	if n.op == "BroadcastInDim" {
		n = n.inputs[0].node
	}
	if n.op != "Constant" {
		return 0, false
	}
	flat, ok := n.args[0].([]float32)
	if !ok || len(flat) == 0 {
		return 0, false
	}
	for _, x := range flat {
		if x != flat[0] {
			return 0, false
		}
	}
	return flat[0], true
}

// foldBiasGradients gives each kernel-gradient convolution the bias
// gradient of the same layer, ReduceSum(dy) over every axis but the
// channels, which oneDNN's backward-weights computes in the same pass:
// the reduction's value is then the kernel's second output.
func (b *backend) foldBiasGradients(f *function, kernels map[*node]*placed, live []bool) {
	sums := map[*value][]*node{} // dy -> the ReduceSums of it
	for _, n := range f.nodes {
		if live[n.index] && n.op == "ReduceSum" && kernels[n] == nil {
			sums[n.inputs[0]] = append(sums[n.inputs[0]], n)
		}
	}
	taken := map[*node]bool{}
	for conv, pk := range kernels {
		ck, ok := pk.k.(*convKernel)
		if !ok || ck.mode != dnnl.ConvBackwardWeights || len(pk.extraOut) > 0 {
			continue
		}
		dy := conv.inputs[1] // the output gradient, the "kernel" of this convolution
		channel := conv.args[0].(compute.ConvolveAxesConfig).KernelOutputChannels
		for _, r := range sums[dy] {
			axes := r.args[0].([]int)
			if taken[r] || len(axes) != dy.shape.Rank()-1 || slices.Contains(axes, channel) {
				continue
			}
			spec := ck.spec
			spec.Bias = true
			op, err := b.lib.Conv(spec)
			if err != nil || reference(op) != "" {
				break
			}
			fused := *ck
			fused.op, fused.spec = op, spec
			pk.k, pk.extraOut = &fused, []*value{r.outs[0]}
			taken[r] = true
			break
		}
	}
}
