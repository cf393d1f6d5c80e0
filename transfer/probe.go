package transfer

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
)

// stdMatrix is a set of standardized feature rows (row-major) with their
// labels: what the head and the linear probe both learn from.
type stdMatrix struct {
	n, dim int
	x      []float32
	y      []int
}

func (m stdMatrix) row(i int) []float32 { return m.x[i*m.dim : (i+1)*m.dim] }

// first returns the first n rows (all if fewer).
func (m stdMatrix) first(n int) stdMatrix {
	n = min(n, m.n)
	return stdMatrix{n: n, dim: m.dim, x: m.x[:n*m.dim], y: m.y[:n]}
}

// normOf returns the training items' per-feature mean and 1/std. Raw
// pooled ReLU features all share a positive offset and very different
// scales; standardized, one weight decay fits every feature and a linear
// model converges in a few hundred full-batch steps.
func normOf(feats [][]float32, idx []int) (mean, inv []float32) {
	dim := len(feats[idx[0]])
	sum, sq := make([]float64, dim), make([]float64, dim)
	for _, i := range idx {
		for k, v := range feats[i] {
			sum[k] += float64(v)
			sq[k] += float64(v) * float64(v)
		}
	}
	mean, inv = make([]float32, dim), make([]float32, dim)
	n := float64(len(idx))
	for k := range sum {
		mu := sum[k] / n
		sd := math.Sqrt(max(0, sq[k]/n-mu*mu))
		mean[k], inv[k] = float32(mu), float32(1/max(sd, 1e-3))
	}
	return mean, inv
}

// standardize returns the rows idx of feats as (x-mean)*inv, computed in
// float32 exactly as the head's graph does, so the Go evaluation and the
// saved head agree.
func standardize(feats [][]float32, items []Item, idx []int, mean, inv []float32) stdMatrix {
	m := stdMatrix{n: len(idx), dim: len(mean), x: make([]float32, len(idx)*len(mean)), y: labelsOf(items, idx)}
	for r, i := range idx {
		row := m.row(r)
		for k, v := range feats[i] {
			row[k] = (v - mean[k]) * inv[k]
		}
	}
	return m
}

// linear is z = x·W + b on standardized rows: W is [dim, out] row-major.
// With out = units it is a classifier (one logit: sigmoid; one per class:
// softmax); the head's weight-decay grid is one linear map with the
// logits of all its heads side by side.
type linear struct {
	dim, out int
	w, b     []float64
}

// logits returns [n*out] logits of the rows of m.
func (l linear) logits(m stdMatrix) []float64 {
	z := make([]float64, m.n*l.out)
	chunks(m.n, func(_, lo, hi int) {
		for i := lo; i < hi; i++ {
			zi := z[i*l.out : (i+1)*l.out]
			copy(zi, l.b)
			for d, v := range m.row(i) {
				if v == 0 {
					continue
				}
				for u, wv := range l.w[d*l.out : (d+1)*l.out] {
					zi[u] += float64(v) * wv
				}
			}
		}
	})
	return z
}

// classProbs turns one example's logits into class probabilities: one
// logit is P(class 1) through a sigmoid, several are a softmax.
func classProbs(z []float64) []float64 {
	if len(z) == 1 {
		p := 1 / (1 + math.Exp(-z[0]))
		return []float64{1 - p, p}
	}
	m := slices.Max(z)
	p := make([]float64, len(z))
	var s float64
	for k, v := range z {
		p[k] = math.Exp(v - m)
		s += p[k]
	}
	for k := range p {
		p[k] /= s
	}
	return p
}

// scoreHeads scores each of the out/units classifiers of l on m.
func scoreHeads(l linear, units int, m stdMatrix, clip float64) []Scores {
	z := l.logits(m)
	out := make([]Scores, l.out/units)
	for g := range out {
		probs := make([][]float64, m.n)
		for i := range probs {
			probs[i] = classProbs(z[i*l.out+g*units : i*l.out+(g+1)*units])
		}
		out[g] = Score(probs, m.y, clip)
	}
	return out
}

// nChunks is fixed rather than the CPU count so that sums over rows are
// added in the same order on every machine: same seed, same probe.
const nChunks = 8

// chunks runs fn over nChunks contiguous row ranges (chunk c is [lo, hi))
// in parallel.
func chunks(n int, fn func(c, lo, hi int)) {
	var wg sync.WaitGroup
	for c := range nChunks {
		lo, hi := c*n/nChunks, (c+1)*n/nChunks
		if lo == hi {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			fn(c, lo, hi)
		}()
	}
	wg.Wait()
}

// logLoss is the objective of an L2-regularized logistic (units=1) or
// softmax regression: the mean cross-entropy over m plus lambda/2·|W|²
// (the bias is not penalized). theta is W ([dim, units] row-major) then b;
// the gradient goes into grad.
func logLoss(m stdMatrix, units int, lambda float64, theta, grad []float64) float64 {
	nw := m.dim * units
	w, b := theta[:nw], theta[nw:]
	type part struct {
		loss float64
		grad []float64
	}
	parts := make([]part, nChunks)
	chunks(m.n, func(c, lo, hi int) {
		g := make([]float64, len(theta))
		z, r := make([]float64, units), make([]float64, units)
		var loss float64
		for i := lo; i < hi; i++ {
			x, y := m.row(i), m.y[i]
			copy(z, b)
			for d, v := range x {
				for u := range units {
					z[u] += float64(v) * w[d*units+u]
				}
			}
			if units == 1 {
				// softplus(z) - y·z, written to stay finite for large |z|.
				t := float64(y)
				loss += max(z[0], 0) - t*z[0] + math.Log1p(math.Exp(-math.Abs(z[0])))
				r[0] = 1/(1+math.Exp(-z[0])) - t
			} else {
				zm := slices.Max(z)
				var s float64
				for _, v := range z {
					s += math.Exp(v - zm)
				}
				lse := zm + math.Log(s)
				loss += lse - z[y]
				for u := range units {
					r[u] = math.Exp(z[u] - lse)
				}
				r[y]--
			}
			for d, v := range x {
				for u := range units {
					g[d*units+u] += float64(v) * r[u]
				}
			}
			for u := range units {
				g[nw+u] += r[u]
			}
		}
		parts[c] = part{loss, g}
	})
	clear(grad)
	var loss float64
	for _, p := range parts {
		if p.grad == nil {
			continue
		}
		loss += p.loss
		for k, v := range p.grad {
			grad[k] += v
		}
	}
	inv := 1 / float64(m.n)
	loss *= inv
	for k := range grad {
		grad[k] *= inv
	}
	for k, v := range w {
		loss += lambda / 2 * v * v
		grad[k] += lambda * v
	}
	return loss
}

// probe is the linear probe's result: the L2 strength that scored best on
// validation and the model fitted with it.
type probe struct {
	model  linear
	lambda float64
	val    Scores
}

// fitProbe fits an L2-regularized logistic regression (softmax for more
// than two classes) on trn for each lambda, by L-BFGS in float64, and keeps
// the one with the lowest validation log loss. It walks from the strongest
// penalty to the weakest, each fit starting at the previous solution, which
// makes the weakly regularized (slowest) fits short.
func fitProbe(ctx context.Context, trn, val stdMatrix, classes int, lambdas []float64, clip float64) (probe, error) {
	units := Head{Classes: classes}.Units()
	order := slices.Clone(lambdas)
	slices.Sort(order)
	slices.Reverse(order)
	theta := make([]float64, trn.dim*units+units)
	best := probe{val: Scores{LogLoss: math.Inf(1)}}
	for _, lambda := range order {
		x, err := minimizeLogLoss(ctx, trn, units, lambda, theta)
		if err != nil {
			return best, fmt.Errorf("linear probe, L2 %g: %w", lambda, err)
		}
		theta = x
		l := linear{dim: trn.dim, out: units, w: x[:trn.dim*units], b: x[trn.dim*units:]}
		s := scoreHeads(l, units, val, clip)[0]
		// Strictly lower: on a tie the stronger penalty (seen first) stays.
		if s.LogLoss < best.val.LogLoss {
			best = probe{model: l, lambda: lambda, val: s}
		}
	}
	return best, nil
}

// minimizeLogLoss returns the minimum of logLoss, starting at theta (not
// modified).
func minimizeLogLoss(ctx context.Context, m stdMatrix, units int, lambda float64, theta []float64) ([]float64, error) {
	f := func(x, g []float64) float64 { return logLoss(m, units, lambda, x, g) }
	// The gradient's largest component, on a mean cross-entropy of order
	// 1: far below what moves a validation log loss in its 4th digit.
	return lbfgs(ctx, f, theta, 1000, 1e-6)
}

// lbfgs minimizes a smooth convex f (which returns its value and writes its
// gradient into g) from x0 with limited-memory BFGS: the two-loop recursion
// over the last 10 steps (Nocedal & Wright, Numerical Optimization, 2nd
// ed., algorithm 7.4) and a backtracking line search on the Armijo
// condition, enough for a strictly convex objective, where every step has
// positive curvature. It stops when the gradient's largest component is
// below gtol, when the value stops decreasing, or after maxIter steps, and
// returns the last point.
func lbfgs(ctx context.Context, f func(x, g []float64) float64, x0 []float64, maxIter int, gtol float64) ([]float64, error) {
	const memory, c1 = 10, 1e-4
	n := len(x0)
	x, g := slices.Clone(x0), make([]float64, n)
	fx := f(x, g)
	xn, gn, d := make([]float64, n), make([]float64, n), make([]float64, n)
	var ss, ys [][]float64
	var rhos []float64
	alpha := make([]float64, memory)
	for range maxIter {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if normInf(g) < gtol {
			break
		}
		// d = -H·g, H the inverse Hessian estimate from the stored pairs.
		copy(d, g)
		for k := len(ss) - 1; k >= 0; k-- {
			alpha[k] = rhos[k] * dot(ss[k], d)
			axpy(-alpha[k], ys[k], d)
		}
		gamma := 1 / max(1, math.Sqrt(dot(g, g))) // first step: length at most 1
		if k := len(ss) - 1; k >= 0 {
			gamma = dot(ss[k], ys[k]) / dot(ys[k], ys[k])
		}
		for i := range d {
			d[i] *= gamma
		}
		for k := range ss {
			beta := rhos[k] * dot(ys[k], d)
			axpy(alpha[k]-beta, ss[k], d)
		}
		for i := range d {
			d[i] = -d[i]
		}
		slope := dot(g, d)
		if slope >= 0 { // rounding broke the estimate: restart from -g
			ss, ys, rhos = ss[:0], ys[:0], rhos[:0]
			for i := range d {
				d[i] = -g[i] / max(1, math.Sqrt(dot(g, g)))
			}
			slope = dot(g, d)
		}
		t, fn, ok := 1.0, 0.0, false
		for range 60 {
			for i := range x {
				xn[i] = x[i] + t*d[i]
			}
			if fn = f(xn, gn); fn <= fx+c1*t*slope {
				ok = true
				break
			}
			t /= 2
		}
		if !ok || !finite(xn) {
			break // no decrease left in float64: x is the minimum found
		}
		s, y := make([]float64, n), make([]float64, n)
		for i := range s {
			s[i], y[i] = xn[i]-x[i], gn[i]-g[i]
		}
		if sy := dot(s, y); sy > 1e-12*math.Sqrt(dot(s, s)*dot(y, y)) {
			if len(ss) == memory {
				ss, ys, rhos = ss[1:], ys[1:], rhos[1:]
			}
			ss, ys, rhos = append(ss, s), append(ys, y), append(rhos, 1/sy)
		}
		decrease := fx - fn
		x, xn = xn, x
		g, gn = gn, g
		fx = fn
		if decrease <= 1e-14*max(1, math.Abs(fx)) {
			break
		}
	}
	if !finite(x) || math.IsNaN(fx) {
		return nil, errors.New("L-BFGS diverged")
	}
	return x, nil
}

func dot(a, b []float64) float64 {
	var s float64
	for i, v := range a {
		s += v * b[i]
	}
	return s
}

// axpy sets y += a·x.
func axpy(a float64, x, y []float64) {
	for i, v := range x {
		y[i] += a * v
	}
}

func normInf(x []float64) float64 {
	var m float64
	for _, v := range x {
		m = max(m, math.Abs(v))
	}
	return m
}

func finite(x []float64) bool {
	for _, v := range x {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}
