package transfer

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// synthFeatures returns pooled-ReLU-like features for labels: a positive
// offset and a scale that differ per feature (what standardization
// removes), class information in a few features only, and noise
// everywhere, so that a few labels overfit without regularization.
func synthFeatures(seed uint64, labels []int, dim, classes int, signal float64) [][]float32 {
	rng := rand.New(rand.NewPCG(seed, 0xfea7))
	scale, offset := make([]float64, dim), make([]float64, dim)
	for k := range dim {
		scale[k], offset[k] = math.Exp(rng.NormFloat64()), 1+rng.Float64()
	}
	// Each class moves 8 random features.
	means := make([][]float64, classes)
	for c := range means {
		means[c] = make([]float64, dim)
		for range 8 {
			means[c][rng.IntN(dim)] += signal
		}
	}
	feats := make([][]float32, len(labels))
	for i, y := range labels {
		f := make([]float32, dim)
		for k := range f {
			f[k] = float32(scale[k] * max(0, offset[k]+means[y][k]+rng.NormFloat64()))
		}
		feats[i] = f
	}
	return feats
}

// matrixOf standardizes synthetic features (all rows) for the probe.
func matrixOf(feats [][]float32, labels []int) stdMatrix {
	items := make([]Item, len(labels))
	idx := make([]int, len(labels))
	for i, y := range labels {
		items[i], idx[i] = Item{Label: y}, i
	}
	mean, inv := normOf(feats, idx)
	return standardize(feats, items, idx, mean, inv)
}

func cycleLabels(n, classes int) []int {
	l := make([]int, n)
	for i := range l {
		l[i] = i % classes
	}
	return l
}

// TestLogLossGradient checks the probe's analytic gradient against central
// differences, for the sigmoid and the softmax, with and without L2.
func TestLogLossGradient(t *testing.T) {
	for _, tc := range []struct {
		classes int
		lambda  float64
	}{{2, 0}, {2, 0.3}, {3, 0}, {3, 0.3}} {
		t.Run(fmt.Sprintf("classes=%d/l2=%g", tc.classes, tc.lambda), func(t *testing.T) {
			labels := cycleLabels(30, tc.classes)
			m := matrixOf(synthFeatures(1, labels, 6, tc.classes, 1), labels)
			units := tc.classes
			if units == 2 {
				units = 1
			}
			rng := rand.New(rand.NewPCG(2, 3))
			theta := make([]float64, m.dim*units+units)
			for i := range theta {
				theta[i] = rng.NormFloat64() * 0.5
			}
			grad := make([]float64, len(theta))
			logLoss(m, units, tc.lambda, theta, grad)
			scratch := make([]float64, len(theta))
			const h = 1e-6
			for i := range theta {
				x := append([]float64(nil), theta...)
				x[i] += h
				up := logLoss(m, units, tc.lambda, x, scratch)
				x[i] -= 2 * h
				down := logLoss(m, units, tc.lambda, x, scratch)
				if num := (up - down) / (2 * h); math.Abs(num-grad[i]) > 1e-6 {
					t.Errorf("d/dθ%d: analytic %.8f, numeric %.8f", i, grad[i], num)
				}
			}
		})
	}
}

// TestProbeFit checks that L-BFGS reaches the minimum (zero gradient) for
// each L2 strength, and that fitProbe keeps the strength whose validation
// log loss is lowest.
func TestProbeFit(t *testing.T) {
	for _, classes := range []int{2, 4} {
		t.Run(fmt.Sprintf("classes=%d", classes), func(t *testing.T) {
			lt, lv := cycleLabels(40, classes), cycleLabels(200, classes)
			all := synthFeatures(7, append(append([]int{}, lt...), lv...), 64, classes, 1.5)
			idx := func(lo, hi int) []int {
				var x []int
				for i := lo; i < hi; i++ {
					x = append(x, i)
				}
				return x
			}
			items := make([]Item, len(all))
			for i, y := range append(append([]int{}, lt...), lv...) {
				items[i] = Item{Label: y}
			}
			mean, inv := normOf(all, idx(0, 40))
			trn, val := standardize(all, items, idx(0, 40), mean, inv), standardize(all, items, idx(40, 240), mean, inv)
			units := classes
			if units == 2 {
				units = 1
			}
			lambdas := []float64{1e-3, 1e-2, 1e-1, 1}
			best := math.Inf(1)
			for _, lambda := range lambdas {
				x, err := minimizeLogLoss(context.Background(), trn, units, lambda, make([]float64, trn.dim*units+units))
				if err != nil {
					t.Fatal(err)
				}
				g := make([]float64, len(x))
				logLoss(trn, units, lambda, x, g)
				if normInf(g) > 1e-5 {
					t.Errorf("L2 %g: gradient %g at the returned point, want ~0", lambda, normInf(g))
				}
				l := linear{dim: trn.dim, out: units, w: x[:trn.dim*units], b: x[trn.dim*units:]}
				best = min(best, scoreHeads(l, units, val, 0.005)[0].LogLoss)
			}
			pr, err := fitProbe(context.Background(), trn, val, classes, lambdas, 0.005)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("probe: L2 %g, val loss %.4f acc %.3f", pr.lambda, pr.val.LogLoss, pr.val.Acc)
			if math.Abs(pr.val.LogLoss-best) > 1e-4 {
				t.Errorf("probe val loss %.6f, want the best over the grid %.6f", pr.val.LogLoss, best)
			}
			if chance := 1 / float64(classes); pr.val.Acc < chance+0.2 {
				t.Errorf("probe val accuracy %.3f, want well above chance %.3f", pr.val.Acc, chance)
			}
		})
	}
}
