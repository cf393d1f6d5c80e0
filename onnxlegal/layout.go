package onnxlegal

import (
	"slices"
	"strings"
)

// Ops that move elements: DepthToSpace and SpaceToDepth as Reshape and
// Transpose; Pad and Slice in the forms the import reads.

func init() {
	rewrites["DepthToSpace"] = depthToSpace
	rewrites["SpaceToDepth"] = spaceToDepth
	rewrites["Pad"] = pad
	rewrites["Slice"] = slice
	rewrites["Einsum"] = einsum
}

// einsum implements Einsum-12 for the import, whose equation parser
// takes no whitespace (torchvision's MaxViT exports "B G H I J, B G H J D
// -> B G H I D"): the spaces are dropped, which ONNX's definition ignores.
func einsum(e *emit) (string, error) {
	eq := e.n.String("equation", "")
	if !strings.ContainsAny(eq, " \t") {
		return "", nil
	}
	e.copyNode(nil, stringAttr("equation", strings.Join(strings.Fields(eq), "")))
	return "whitespace dropped from the equation", nil
}

// depthToSpace implements DepthToSpace-13 (and -1, -11), both modes, by
// the spec's own definition: DCR reshapes to [N, b, b, C/b², H, W] and
// transposes by (0, 3, 4, 1, 5, 2); CRD reshapes to [N, C/b², b, b, H, W]
// and transposes by (0, 1, 4, 2, 5, 3); both end [N, C/b², H·b, W·b].
func depthToSpace(e *emit) (string, error) {
	x := e.l.shapes[e.n.Inputs[0]]
	b := e.n.Int("blocksize", 0)
	if len(x) != 4 || !known(x[1:]) || b < 1 || x[1]%(b*b) != 0 {
		return "", e.unsupported("needs a 4-D input of known size with channels divisible by blocksize² (input %s, blocksize %d)", dimsString(x), b)
	}
	c, h, w := x[1]/(b*b), x[2], x[3]
	var t string
	switch mode := e.n.String("mode", "DCR"); mode {
	case "DCR":
		t = e.transpose(e.reshape(e.n.Inputs[0], 0, b, b, c, h, w), 0, 3, 4, 1, 5, 2)
	case "CRD":
		t = e.transpose(e.reshape(e.n.Inputs[0], 0, c, b, b, h, w), 0, 1, 4, 2, 5, 3)
	default:
		return "", e.unsupported("attribute mode=%s is not supported", mode)
	}
	e.final("Reshape", []string{t, e.ints64(0, c, h*b, w*b)})
	return "→ Reshape, Transpose, Reshape", nil
}

// spaceToDepth implements SpaceToDepth-13 (and -1): reshape to
// [N, C, H/b, b, W/b, b], transpose by (0, 3, 5, 1, 2, 4), reshape to
// [N, C·b², H/b, W/b].
func spaceToDepth(e *emit) (string, error) {
	x := e.l.shapes[e.n.Inputs[0]]
	b := e.n.Int("blocksize", 0)
	if len(x) != 4 || !known(x[1:]) || b < 1 || x[2]%b != 0 || x[3]%b != 0 {
		return "", e.unsupported("needs a 4-D input of known size divisible by blocksize (input %s, blocksize %d)", dimsString(x), b)
	}
	c, h, w := x[1], x[2]/b, x[3]/b
	t := e.transpose(e.reshape(e.n.Inputs[0], 0, c, h, b, w, b), 0, 3, 5, 1, 2, 4)
	e.final("Reshape", []string{t, e.ints64(0, c*b*b, h, w)})
	return "→ Reshape, Transpose, Reshape", nil
}

// pad implements Pad-13 (and Pad-2's attributes, Pad-11's inputs) in ops
// the import reads and GoMLX differentiates: mode=constant as Concats of
// filled blocks (GoMLX has no gradient for its Pad), mode=edge and
// mode=reflect as a Gather of the ONNX definition's indices per axis (the
// import's reflect uses Reverse, which GoMLX cannot differentiate either).
// The pads must be constant: given as attributes (opset < 11), an
// initializer, or shape arithmetic folded here (torch's F.pad computes
// them with a reversing Slice, which the import gets wrong).
func pad(e *emit) (string, error) {
	n := e.n
	mode := n.String("mode", "constant")
	var pads []int64
	if a := n.Attr("pads"); a != nil {
		pads = a.Ints
	} else {
		v := e.l.value(n.Inputs[1])
		if !v.complete() {
			return "", e.unsupported("pads are not constant")
		}
		pads = v.ints()
	}
	x := e.l.shapes[n.Inputs[0]]
	if x == nil || len(pads) != 2*len(x) {
		return "", e.unsupported("%d pads for an input of shape %s", len(pads), dimsString(x))
	}
	if !slices.ContainsFunc(pads, func(p int64) bool { return p != 0 }) {
		e.finish(n.Inputs[0])
		return "no padding → its input", nil
	}
	switch mode {
	case "constant":
		fill := 0.0
		if a := n.Attr("value"); a != nil {
			fill = float64(a.F)
		} else if len(n.Inputs) > 2 && n.Inputs[2] != "" {
			v := e.l.value(n.Inputs[2])
			if !v.complete() || len(v.floats()) != 1 {
				return "", e.unsupported("constant_value is not a constant scalar")
			}
			fill = v.floats()[0]
		}
		y, err := e.pad(n.Inputs[0], pads, fill)
		if err != nil {
			return "", err
		}
		e.finish(y)
		return "mode=constant → Concat of filled blocks", nil
	case "edge", "reflect":
		r := len(x)
		y := n.Inputs[0]
		for a := range r {
			lo, hi := pads[a], pads[a+r]
			if lo == 0 && hi == 0 {
				continue
			}
			d := x[a]
			if d < 0 || mode == "reflect" && (lo >= d || hi >= d) {
				return "", e.unsupported("mode=%s needs the input's size, at least pad+1 on each padded axis (input %s)", mode, dimsString(x))
			}
			var idx []int64
			for k := -lo; k < d+hi; k++ {
				switch {
				case mode == "edge":
					idx = append(idx, max(0, min(k, d-1)))
				case k < 0:
					idx = append(idx, -k)
				case k >= d:
					idx = append(idx, 2*(d-1)-k)
				default:
					idx = append(idx, k)
				}
			}
			y = e.gather(y, idx, int64(a))
		}
		e.finish(y)
		return "mode=" + mode + " → Gather of the padded indices", nil
	}
	return "", e.unsupported("attribute mode=%s is not supported", mode)
}

// slice implements Slice-13 (and Slice-1's attributes) for the import:
// attributes become inputs, and an axis sliced with a negative step — the
// import mistakes the clamped end −1 for "the last element" — becomes a
// Gather of the indices ONNX's rules select.
func slice(e *emit) (string, error) {
	n := e.n
	x := e.l.shapes[n.Inputs[0]]
	attrs := n.Attr("starts") != nil
	rank := len(x)
	if x == nil {
		if attrs {
			return "", e.unsupported("the input's rank is unknown")
		}
		return "", nil
	}
	starts, ends, axes, steps, ok := e.l.sliceArgs(n, rank)
	if !ok {
		if attrs {
			return "", e.unsupported("starts, ends, axes or steps do not match")
		}
		return "", nil
	}
	var gathers []int
	for i, s := range steps {
		if s < 0 {
			gathers = append(gathers, i)
		}
	}
	if !attrs && gathers == nil {
		return "", nil
	}
	y := n.Inputs[0]
	var ps, pe, pa, pst []int64
	for i := range axes {
		if steps[i] > 0 {
			ps, pe, pa, pst = append(ps, starts[i]), append(pe, ends[i]), append(pa, axes[i]), append(pst, steps[i])
		}
	}
	if pa != nil {
		y = e.slice(y, ps, pe, pa, pst)
	}
	for _, i := range gathers {
		d := x[axes[i]]
		if d < 0 {
			return "", e.unsupported("a negative step on an axis of unknown size (input %s)", dimsString(x))
		}
		first, count := sliceRange(starts[i], ends[i], steps[i], d)
		if count == 0 {
			return "", e.unsupported("an empty slice with a negative step is not supported")
		}
		idx := make([]int64, count)
		for k := range idx {
			idx[k] = first + int64(k)*steps[i]
		}
		y = e.gather(y, idx, axes[i])
	}
	e.finish(y)
	if gathers != nil {
		return "negative step → Gather", nil
	}
	return "attributes → inputs", nil
}
