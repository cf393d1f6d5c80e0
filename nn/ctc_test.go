package nn

import (
	"math"
	"testing"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
)

type ctcFixture struct {
	Cases []struct {
		Name                          string
		Blank                         int
		Logits, Labels, Loss, Dlogits arr
		InputLens                     arr `json:"input_lens"`
		LabelLens                     arr `json:"label_lens"`
	}
}

// TestCTCLossMatchesTorch compares with torch ctc_loss(reduction='none') per
// example and the gradient of the summed loss w.r.t. the logits, in float64
// (tolerance 1e-7 relative) and float32 (1e-4 relative to max(1, |value|)).
func TestCTCLossMatchesTorch(t *testing.T) {
	var fx ctcFixture
	loadFixture(t, "ctc.json", &fx)
	if len(fx.Cases) < 4 {
		t.Fatal("missing cases")
	}
	for _, c := range fx.Cases {
		for _, dt := range []dtypes.DType{dtypes.Float64, dtypes.Float32} {
			t.Run(c.Name+"/"+dt.String(), func(t *testing.T) {
				out := run(t, func(in []*Node) []*Node {
					loss := CTCLoss(in[0], in[1], in[2], in[3], c.Blank)
					return []*Node{loss, Gradient(ReduceAllSum(loss), in[0])[0]}
				}, c.Logits.tensor(dt), c.Labels.tensor(dtypes.Int32), c.InputLens.tensor(dtypes.Int32),
					c.LabelLens.tensor(dtypes.Int32))
				tol := 1e-7
				if dt == dtypes.Float32 {
					tol = 1e-4
				}
				for i := range c.Loss.Data {
					got, want := out[0].Data[i], c.Loss.Data[i]
					if math.Abs(got-want) > tol*max(1, math.Abs(want)) {
						t.Errorf("loss[%d] = %.8g, want %.8g", i, got, want)
					}
				}
				assertClose(t, "dlogits", out[1], c.Dlogits, tol)
			})
		}
	}
}

func TestCTCLossFiniteDifferences(t *testing.T) {
	labels := tensors.FromValue([][]int32{{1, 1, 2}, {2, 0, 0}})
	_ = labels
	fdCheck(t, func(in []*Node) *Node {
		g := in[0].Graph()
		lab := Const(g, [][]int32{{1, 1, 2}, {2, 0, 0}})
		loss := CTCLoss(in[0], lab, Const(g, []int32{7, 5}), Const(g, []int32{3, 1}), 0)
		return ReduceAllSum(Mul(loss, Const(g, []float64{0.7, 1.3})))
	}, randArr(31, 2, 7, 3))
}

func TestCTCGreedyDecode(t *testing.T) {
	// argmax path: 1 1 0 1 2 2 0 -> [1 1 2]
	path := []int{1, 1, 0, 1, 2, 2, 0}
	scores := make([]float32, len(path)*3)
	for t, c := range path {
		scores[t*3+c] = 5
	}
	got, err := CTCGreedyDecode(scores, 3, len(path), 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1, 1, 2}; !equalInts(got, want) {
		t.Errorf("got %v want %v", got, want)
	}
	if _, err := CTCGreedyDecode(scores, 3, len(path), 3); err == nil {
		t.Error("want error for blank out of range")
	}
	if _, err := CTCGreedyDecode(scores[:5], 3, len(path), 0); err == nil {
		t.Error("want error for short scores")
	}
}

// TestCTCBeamSearchExact checks prefix beam search against brute force: the
// labeling with the highest total probability summed over all paths.
func TestCTCBeamSearchExact(t *testing.T) {
	const steps, classes = 5, 3
	for seed := uint64(40); seed < 46; seed++ {
		a := randArr(seed, steps, classes)
		scores := make([]float32, len(a.Data))
		for i, v := range a.Data {
			scores[i] = float32(2 * v)
		}
		logp := make([]float64, len(scores))
		for t := range steps {
			logSoftmaxRow(scores[t*classes:(t+1)*classes], logp[t*classes:(t+1)*classes])
		}
		// Brute force over all classes^steps paths.
		totals := map[string]float64{}
		labelings := map[string][]int{}
		path := make([]int, steps)
		var rec func(t int)
		rec = func(t int) {
			if t == steps {
				var lab []int
				prev, lp := -1, 0.0
				for i, c := range path {
					lp += logp[i*classes+c]
					if c != prev && c != 0 {
						lab = append(lab, c)
					}
					prev = c
				}
				k := prefixKey(lab)
				totals[k] += math.Exp(lp)
				labelings[k] = lab
				return
			}
			for c := range classes {
				path[t] = c
				rec(t + 1)
			}
		}
		rec(0)
		bestK, bestP := "", -1.0
		for k, p := range totals {
			if p > bestP {
				bestK, bestP = k, p
			}
		}
		got, score, err := CTCBeamSearchDecode(scores, classes, steps, 0, 64)
		if err != nil {
			t.Fatal(err)
		}
		if !equalInts(got, labelings[bestK]) {
			t.Errorf("seed %d: beam %v, brute force %v", seed, got, labelings[bestK])
		}
		if math.Abs(score-math.Log(bestP)) > 1e-9 {
			t.Errorf("seed %d: score %.10g, want %.10g", seed, score, math.Log(bestP))
		}
	}
}

// TestCTCBeamBeatsGreedy uses the classic case where the best path is blank
// but the most probable labeling is "1".
func TestCTCBeamBeatsGreedy(t *testing.T) {
	p := [][]float64{{0.6, 0.4}, {0.6, 0.4}} // P(blank blank)=.36 < P("1")=.64
	scores := make([]float32, 4)
	for t := range 2 {
		for c := range 2 {
			scores[t*2+c] = float32(math.Log(p[t][c]))
		}
	}
	g, _ := CTCGreedyDecode(scores, 2, 2, 0)
	b, _, _ := CTCBeamSearchDecode(scores, 2, 2, 0, 4)
	if len(g) != 0 || !equalInts(b, []int{1}) {
		t.Errorf("greedy %v (want []), beam %v (want [1])", g, b)
	}
}

func TestCTCDecodeBatch(t *testing.T) {
	scores := tensors.FromValue([][][]float32{
		{{0, 5, 0}, {0, 5, 0}, {5, 0, 0}, {0, 0, 5}},
		{{0, 0, 5}, {5, 0, 0}, {0, 0, 5}, {0, 5, 0}},
	})
	for _, beam := range []int{1, 8} {
		got, err := CTCDecodeBatch(scores, []int{4, 3}, 0, beam)
		if err != nil {
			t.Fatal(err)
		}
		if !equalInts(got[0], []int{1, 2}) || !equalInts(got[1], []int{2, 2}) {
			t.Errorf("beam %d: got %v", beam, got)
		}
	}
	if _, err := CTCDecodeBatch(scores, []int{5, 3}, 0, 1); err == nil {
		t.Error("want error for input length > steps")
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
