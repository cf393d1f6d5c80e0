package nn

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
)

// ErrBadCTCInput reports scores whose size or parameters are inconsistent.
var ErrBadCTCInput = errors.New("nn: bad CTC decoder input")

func checkCTCArgs(scores []float32, classes, steps, blank int) error {
	if classes <= 0 || steps < 0 || len(scores) < steps*classes {
		return fmt.Errorf("%w: %d scores for %d steps x %d classes", ErrBadCTCInput, len(scores), steps, classes)
	}
	if blank < 0 || blank >= classes {
		return fmt.Errorf("%w: blank %d not in [0, %d)", ErrBadCTCInput, blank, classes)
	}
	return nil
}

// CTCGreedyDecode is best-path decoding of one example: the arg-max class per
// step, repeats collapsed, blanks removed. scores is [steps, classes]
// row-major (logits, probabilities or log-probabilities: arg-max is the same).
func CTCGreedyDecode(scores []float32, classes, steps, blank int) ([]int, error) {
	if err := checkCTCArgs(scores, classes, steps, blank); err != nil {
		return nil, err
	}
	out := []int{}
	prev := -1
	for t := range steps {
		row := scores[t*classes : (t+1)*classes]
		best := 0
		for c := 1; c < classes; c++ {
			if row[c] > row[best] {
				best = c
			}
		}
		if best != prev && best != blank {
			out = append(out, best)
		}
		prev = best
	}
	return out, nil
}

// beamEntry tracks a prefix's probability split by whether its last path
// symbol was a blank, in log space.
type beamEntry struct {
	prefix          []int
	blank, nonBlank float64
}

func (e *beamEntry) total() float64 { return logAdd(e.blank, e.nonBlank) }

func logAdd(a, b float64) float64 {
	if math.IsInf(a, -1) {
		return b
	}
	if math.IsInf(b, -1) {
		return a
	}
	if a < b {
		a, b = b, a
	}
	return a + math.Log1p(math.Exp(b-a))
}

func prefixKey(p []int) string {
	var sb strings.Builder
	for _, v := range p {
		fmt.Fprintf(&sb, "%d,", v)
	}
	return sb.String()
}

// CTCBeamSearchDecode is prefix beam search of one example (Hannun et al.
// 2014, no language model): it keeps the beamWidth most probable label
// prefixes, summing over all paths that collapse to each prefix. scores is
// [steps, classes] row-major logits or log-probabilities (log-softmax is
// applied per step, which leaves log-probabilities unchanged). It returns the
// best labeling and its log-probability. With a beam at least as large as the
// number of distinct prefixes it is exact.
func CTCBeamSearchDecode(scores []float32, classes, steps, blank, beamWidth int) ([]int, float64, error) {
	if err := checkCTCArgs(scores, classes, steps, blank); err != nil {
		return nil, 0, err
	}
	if beamWidth < 1 {
		return nil, 0, fmt.Errorf("%w: beam width %d < 1", ErrBadCTCInput, beamWidth)
	}
	negInf := math.Inf(-1)
	beams := []*beamEntry{{prefix: nil, blank: 0, nonBlank: negInf}}
	logp := make([]float64, classes)
	for t := range steps {
		logSoftmaxRow(scores[t*classes:(t+1)*classes], logp)
		next := make(map[string]*beamEntry, len(beams)*classes)
		get := func(p []int) *beamEntry {
			k := prefixKey(p)
			e, ok := next[k]
			if !ok {
				e = &beamEntry{prefix: p, blank: negInf, nonBlank: negInf}
				next[k] = e
			}
			return e
		}
		for _, b := range beams {
			tot := b.total()
			// Blank: prefix unchanged, now ends in blank.
			e := get(b.prefix)
			e.blank = logAdd(e.blank, tot+logp[blank])
			var last = -1
			if len(b.prefix) > 0 {
				last = b.prefix[len(b.prefix)-1]
			}
			for c := range classes {
				if c == blank {
					continue
				}
				if c == last {
					// Repeat without a blank in between collapses into the same prefix...
					e := get(b.prefix)
					e.nonBlank = logAdd(e.nonBlank, b.nonBlank+logp[c])
					// ...while after a blank it extends the prefix.
					ext := get(append(slices.Clip(b.prefix), c))
					ext.nonBlank = logAdd(ext.nonBlank, b.blank+logp[c])
					continue
				}
				ext := get(append(slices.Clip(b.prefix), c))
				ext.nonBlank = logAdd(ext.nonBlank, tot+logp[c])
			}
		}
		beams = beams[:0]
		for _, e := range next {
			beams = append(beams, e)
		}
		sort.Slice(beams, func(i, j int) bool {
			ti, tj := beams[i].total(), beams[j].total()
			if ti != tj {
				return ti > tj
			}
			return prefixKey(beams[i].prefix) < prefixKey(beams[j].prefix) // deterministic ties
		})
		if len(beams) > beamWidth {
			beams = beams[:beamWidth]
		}
	}
	best := beams[0]
	out := append([]int{}, best.prefix...)
	return out, best.total(), nil
}

func logSoftmaxRow(row []float32, out []float64) {
	m := math.Inf(-1)
	for _, v := range row {
		m = max(m, float64(v))
	}
	var sum float64
	for _, v := range row {
		sum += math.Exp(float64(v) - m)
	}
	lse := m + math.Log(sum)
	for i, v := range row {
		out[i] = float64(v) - lse
	}
}

// CTCDecodeBatch decodes a [batch, steps, classes] float32 tensor of logits
// (or log-probabilities), using inputLens[b] steps of example b (all steps
// when inputLens is nil). beamWidth <= 1 selects greedy decoding.
func CTCDecodeBatch(scores *tensors.Tensor, inputLens []int, blank, beamWidth int) ([][]int, error) {
	sh := scores.Shape()
	if sh.Rank() != 3 || sh.DType != dtypes.Float32 {
		return nil, fmt.Errorf("%w: want float32 [batch, steps, classes], got %s", ErrBadCTCInput, sh)
	}
	batch, steps, classes := sh.Dimensions[0], sh.Dimensions[1], sh.Dimensions[2]
	if inputLens != nil && len(inputLens) != batch {
		return nil, fmt.Errorf("%w: %d input lengths for batch %d", ErrBadCTCInput, len(inputLens), batch)
	}
	flat, err := tensors.CopyFlatData[float32](scores)
	if err != nil {
		return nil, fmt.Errorf("read CTC scores: %w", err)
	}
	out := make([][]int, batch)
	for b := range batch {
		n := steps
		if inputLens != nil {
			n = inputLens[b]
			if n < 0 || n > steps {
				return nil, fmt.Errorf("%w: input length %d of example %d not in [0, %d]", ErrBadCTCInput, n, b, steps)
			}
		}
		ex := flat[b*steps*classes : (b*steps+n)*classes]
		if beamWidth <= 1 {
			out[b], err = CTCGreedyDecode(ex, classes, n, blank)
		} else {
			out[b], _, err = CTCBeamSearchDecode(ex, classes, n, blank, beamWidth)
		}
		if err != nil {
			return nil, fmt.Errorf("example %d: %w", b, err)
		}
	}
	return out, nil
}
