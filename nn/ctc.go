package nn

import (
	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/support/exceptions"
)

// ctcNeg stands in for log(0). A finite value keeps max-shifted log-sum-exp
// free of (-inf) - (-inf) = NaN, and is small enough that exp() of it relative
// to any real log-probability underflows to exactly 0 in float32 and float64.
const ctcNeg = -1e30

// CTCLoss returns the per-example CTC negative log-likelihood [batch], the
// equivalent of torch.nn.functional.ctc_loss(log_softmax(logits), ...,
// reduction='none', zero_infinity=False) (torch takes time-major input; this
// takes batch-major).
//
//   - logits [batch, time, classes]: unnormalized scores; log-softmax is applied here.
//   - labels [batch, maxLabelLen] integer class ids, padded arbitrarily past labelLens.
//   - inputLens [batch], labelLens [batch]: integer lengths; steps t >= inputLens[b] are ignored.
//   - blank: the blank class index (Keras uses classes-1, torch defaults to 0).
//
// It is the log-space forward (alpha) recursion over the 2*maxLabelLen+1
// extended labels, unrolled over time, so GoMLX autodiff gives the gradient.
// Unreachable targets (input too short) yield a loss around 1e30 instead of
// torch's +inf.
func CTCLoss(logits, labels, inputLens, labelLens *Node, blank int) *Node {
	g := logits.Graph()
	if logits.Rank() != 3 || labels.Rank() != 2 || inputLens.Rank() != 1 || labelLens.Rank() != 1 {
		exceptions.Panicf("nn.CTCLoss: want logits [b,t,c], labels [b,l], lens [b]; got %s, %s, %s, %s",
			logits.Shape(), labels.Shape(), inputLens.Shape(), labelLens.Shape())
	}
	d := logits.Shape().Dimensions
	batch, steps, classes := d[0], d[1], d[2]
	if blank < 0 || blank >= classes {
		exceptions.Panicf("nn.CTCLoss: blank %d out of range [0, %d)", blank, classes)
	}
	maxL := labels.Shape().Dimensions[1]
	S := 2*maxL + 1
	dt := logits.DType()
	labels = ConvertDType(labels, dtypes.Int32)
	inputLens = ConvertDType(inputLens, dtypes.Int32)
	labelLens = ConvertDType(labelLens, dtypes.Int32)

	// Extended labels [b, S]: blank, l1, blank, l2, ..., blank.
	blanks := Scalar(g, dtypes.Int32, blank)
	var ext *Node
	if maxL == 0 {
		ext = BroadcastToDims(blanks, batch, 1)
	} else {
		pairs := Stack([]*Node{BroadcastToDims(blanks, batch, maxL), labels}, 2) // [b, L, 2]
		ext = Concatenate([]*Node{Reshape(pairs, batch, 2*maxL), BroadcastToDims(blanks, batch, 1)}, 1)
	}

	logp := LogSoftmax(logits, -1)
	// emit[b, t, s] = logp[b, t, ext[b, s]] via a one-hot contraction (exact: a
	// single nonzero product per output).
	onehot := OneHot(ext, classes, dt)                                        // [b, S, c]
	emit := Dot(logp, onehot).General([]int{2}, []int{0}, []int{2}, []int{0}) // [b, t, S]

	neg := Scalar(g, dt, ctcNeg)
	zero := ScalarZero(g, dt)
	sIdx := Iota(g, shapes.Make(dtypes.Int32, batch, S), 1)
	// Skip transition s-2 -> s allowed when ext[s] is a label differing from ext[s-2].
	var skipAdd *Node
	if S > 2 {
		prev2 := Concatenate([]*Node{BroadcastToDims(blanks, batch, 2), Slice(ext, AxisRange(), AxisRange(0, S-2))}, 1)
		allowed := LogicalAnd(NotEqual(ext, BroadcastToDims(blanks, batch, S)), NotEqual(ext, prev2))
		skipAdd = Where(allowed, BroadcastToDims(zero, batch, S), BroadcastToDims(neg, batch, S))
	}
	shift := func(a *Node, n int) *Node {
		if n >= S {
			return BroadcastToDims(neg, batch, S)
		}
		return Concatenate([]*Node{BroadcastToDims(neg, batch, n), Slice(a, AxisRange(), AxisRange(0, S-n))}, 1)
	}
	emitAt := func(t int) *Node {
		return Reshape(Slice(emit, AxisRange(), AxisElem(t), AxisRange()), batch, S)
	}

	// alpha_0: only s = 0 (blank) and s = 1 (first label) are reachable.
	alpha := Where(LessThan(sIdx, Scalar(g, dtypes.Int32, 2)), emitAt(0), BroadcastToDims(neg, batch, S))
	inLens := Reshape(inputLens, batch, 1)
	for t := 1; t < steps; t++ {
		a1 := shift(alpha, 1)
		var next *Node
		if skipAdd != nil {
			next = logSumExp3(alpha, a1, Add(shift(alpha, 2), skipAdd))
		} else {
			next = logSumExp2(alpha, a1)
		}
		next = Add(next, emitAt(t))
		active := GreaterThan(inLens, Scalar(g, dtypes.Int32, t)) // [b, 1]
		alpha = Where(BroadcastToDims(active, batch, S), next, alpha)
	}

	// log p(labels) = logsumexp(alpha[2L], alpha[2L-1]).
	end := Reshape(MulScalar(labelLens, 2), batch, 1)
	final := LogicalOr(Equal(sIdx, end), Equal(sIdx, Sub(end, OnesLike(end))))
	masked := Where(final, alpha, BroadcastToDims(neg, batch, S))
	m := StopGradient(ReduceAndKeep(masked, ReduceMax, 1))
	ll := Add(Reshape(m, batch), Log(ReduceSum(Exp(Sub(masked, m)), 1)))
	return Neg(ll)
}

// logSumExp2/3 are element-wise log(exp(a)+exp(b)[+exp(c)]). The shift m is
// wrapped in StopGradient: the result does not depend on it mathematically, and
// it avoids the (tie-ambiguous) gradient of Max.
func logSumExp2(a, b *Node) *Node {
	m := StopGradient(Max(a, b))
	return Add(m, Log(Add(Exp(Sub(a, m)), Exp(Sub(b, m)))))
}

func logSumExp3(a, b, c *Node) *Node {
	m := StopGradient(Max(Max(a, b), c))
	return Add(m, Log(Add(Add(Exp(Sub(a, m)), Exp(Sub(b, m))), Exp(Sub(c, m)))))
}
