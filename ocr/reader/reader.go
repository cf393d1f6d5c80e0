// Package reader owns the networks that read text from images, for every
// OCR kind: the CRNN + CTC reader of both rounds (Book: the preliminary
// round's captchas and expressions; Strip: the final round's joined
// lines), the book's 4-head captcha CNN, their charsets, the greedy
// decoder, the batched predictor and the scores of readings against
// labels (text, and the exact values of expressions).
package reader

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/nn"
)

// Net is a reading network: CRNN or CNN.
type Net interface {
	// Input is the image shape it reads: [batch, height, width, channels].
	Input() (height, width, channels int)
	// LabelLen is the width of the label tensors: the longest text.
	LabelLen() int
	Logits(scope *model.Scope, x *Node) *Node
	// ExampleLoss is the loss per example [batch] of labels [batch,
	// LabelLen] int32 with labelLens [batch] int32.
	ExampleLoss(logits, labels, labelLens *Node) *Node
	// Probs are the probabilities Decode reads.
	Probs(logits *Node) *Node
	// Decode reads one example's Probs (row-major): the class ids and the
	// probability of the chosen path.
	Decode(probs []float32) (ids []int, conf float64, err error)
	// Check reports a configuration the network cannot be built with.
	Check() error
}

// Loss is the train.LossFn of net: the mean ExampleLoss; labels are
// [labels, labelLens].
func Loss(net Net) func(labels, logits []*Node) *Node {
	return func(labels, logits []*Node) *Node {
		return ReduceAllMean(net.ExampleLoss(logits[0], labels[0], labels[1]))
	}
}

// greedy decodes one example's probabilities [steps, classes] row-major:
// the arg-max class of each step, with repeats collapsed and blanks
// removed when blank >= 0 (CTC), cut to maxLen. The confidence is the
// probability of the chosen path. A CTC reading may be shorter than the
// label: it then counts as wrong.
func greedy(probs []float32, classes, blank, maxLen int) ([]int, float64, error) {
	steps := len(probs) / classes
	logConf := 0.0
	best := make([]int, steps)
	for t := range steps {
		row := probs[t*classes : (t+1)*classes]
		b := 0
		for k := 1; k < classes; k++ {
			if row[k] > row[b] {
				b = k
			}
		}
		best[t] = b
		logConf += math.Log(math.Max(float64(row[b]), 1e-30))
	}
	ids := best
	if blank >= 0 {
		var err error
		if ids, err = nn.CTCGreedyDecode(probs, classes, steps, blank); err != nil {
			return nil, 0, fmt.Errorf("decode: %w", err)
		}
	}
	if len(ids) > maxLen {
		ids = ids[:maxLen]
	}
	return ids, math.Exp(logConf), nil
}
