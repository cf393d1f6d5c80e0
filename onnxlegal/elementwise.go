package onnxlegal

import "math"

// Activations the import lacks, as their ONNX definitions in Relu, Min,
// Max, Mul and Add; and older forms of ops the import reads only in
// their newer form.

func init() {
	rewrites["HardSigmoid"] = hardSigmoid
	rewrites["HardSwish"] = hardSwish
	rewrites["LeakyRelu"] = leakyRelu
	rewrites["PRelu"] = pRelu
	rewrites["Clip"] = clip
	rewrites["Dropout"] = dropout
	rewrites["BatchNormalization"] = batchNorm
	rewrites["Identity"] = identity
}

// identity implements Identity-16 by reading its input directly: GoMLX
// has no gradient for its Identity, and torch writes one for every shared
// weight.
func identity(e *emit) (string, error) {
	e.finish(e.n.Inputs[0])
	return "→ its input (GoMLX cannot differentiate Identity)", nil
}

// hardSigmoidOf emits max(0, min(1, alpha·x + beta)) (HardSigmoid-6).
func (e *emit) hardSigmoidOf(x string, alpha, beta float64) string {
	y := e.op("Add", []string{e.op("Mul", []string{x, e.scalar(alpha)}), e.scalar(beta)})
	return e.op("Min", []string{y, e.scalar(1)})
}

// hardSigmoid implements HardSigmoid-6 (alpha 0.2, beta 0.5 by default).
func hardSigmoid(e *emit) (string, error) {
	n := e.n
	y := e.hardSigmoidOf(n.Inputs[0], float64(n.Float("alpha", 0.2)), float64(n.Float("beta", 0.5)))
	e.final("Max", []string{y, e.scalar(0)})
	return "→ Max(0, Min(1, alpha·x + beta))", nil
}

// hardSwish implements HardSwish-14: x · HardSigmoid(x) with alpha 1/6 and
// beta 0.5. The import has a HardSwish; rewriting it keeps one definition
// (GoMLX's differs in rounding) and its gradient plain.
func hardSwish(e *emit) (string, error) {
	x := e.n.Inputs[0]
	s := e.op("Max", []string{e.hardSigmoidOf(x, 1.0/6, 0.5), e.scalar(0)})
	e.final("Mul", []string{x, s})
	return "→ x · Max(0, Min(1, x/6 + 1/2))", nil
}

// leakyRelu implements LeakyRelu-16 (and -6): Relu(x) + alpha·Min(x, 0),
// exact for any alpha (one of the two terms is an exact zero).
func leakyRelu(e *emit) (string, error) {
	x := e.n.Inputs[0]
	neg := e.op("Mul", []string{e.op("Min", []string{x, e.scalar(0)}), e.scalar(float64(e.n.Float("alpha", 0.01)))})
	e.final("Add", []string{e.op("Relu", []string{x}), neg})
	return "→ Relu(x) + alpha·Min(x, 0)", nil
}

// pRelu implements PRelu-16 (and -9): Relu(x) + slope·Min(x, 0), the
// slope broadcast as ONNX broadcasts it.
func pRelu(e *emit) (string, error) {
	x := e.n.Inputs[0]
	neg := e.op("Mul", []string{e.op("Min", []string{x, e.scalar(0)}), e.n.Inputs[1]})
	e.final("Add", []string{e.op("Relu", []string{x}), neg})
	return "→ Relu(x) + slope·Min(x, 0)", nil
}

// clip implements Clip-6, whose bounds are attributes: the import reads
// only Clip-11's inputs and would pass the tensor through unclipped.
func clip(e *emit) (string, error) {
	n := e.n
	lo, hi := n.Attr("min"), n.Attr("max")
	if lo == nil && hi == nil {
		return "", nil
	}
	y := n.Inputs[0]
	if lo != nil {
		y = e.op("Max", []string{y, e.scalar(float64(lo.F))})
	}
	if hi != nil {
		y = e.op("Min", []string{y, e.scalar(float64(hi.F))})
	}
	e.finish(y)
	return "min/max attributes → Max, Min", nil
}

// dropout implements Dropout-13 in inference (training_mode false, the
// default): the identity. The mask output is refused.
func dropout(e *emit) (string, error) {
	n := e.n
	if e.usesOutput(1) {
		return "", e.unsupported("output mask is not supported")
	}
	// A ratio of 0 is the identity even in training mode (torchvision's
	// Swin exports its attention dropout so).
	zero := false
	if len(n.Inputs) > 1 && n.Inputs[1] != "" {
		v := e.l.value(n.Inputs[1])
		zero = v.complete() && len(v.floats()) == 1 && v.floats()[0] == 0
	}
	if len(n.Inputs) > 2 && n.Inputs[2] != "" && !zero {
		v := e.l.value(n.Inputs[2])
		if !v.complete() || len(v.ints()) != 1 || v.ints()[0] != 0 {
			return "", e.unsupported("training_mode is not supported")
		}
	}
	if n.Int("is_test", 1) == 0 {
		return "", e.unsupported("attribute is_test=0 is not supported")
	}
	e.finish(n.Inputs[0])
	return "→ its input (inference)", nil
}

// batchNorm implements BatchNormalization-15 in inference: momentum only
// matters in training, and the import refuses any momentum but 0.9
// (Keras writes 0.99); training outputs and spatial=0 are refused.
func batchNorm(e *emit) (string, error) {
	n := e.n
	if n.Int("training_mode", 0) != 0 || e.usesOutput(1) || e.usesOutput(2) {
		return "", e.unsupported("training mode is not supported")
	}
	if n.Int("spatial", 1) == 0 {
		return "", e.unsupported("attribute spatial=0 is not supported")
	}
	if a := n.Attr("momentum"); a == nil || math.Abs(float64(a.F)-0.9) < 1e-7 {
		if n.Attr("spatial") == nil && n.Attr("is_test") == nil {
			return "", nil
		}
	}
	e.copyNode([]string{"momentum", "spatial", "is_test"})
	return "training-only attributes dropped", nil
}
