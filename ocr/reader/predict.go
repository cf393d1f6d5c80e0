package reader

import (
	"context"
	"fmt"

	"github.com/gomlx/compute"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // GoMLX style.
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// Reading is one decoded image.
type Reading struct {
	Text       string
	Confidence float64 // probability of the decoded path
	Loss       float64 // only meaningful for labeled images
}

// Images fills x (len(texts) images of the network's input shape, zeroed)
// and texts (their labels, "" when unlabeled) with images start …
// start+len(texts)-1 of a set.
type Images func(ctx context.Context, start int, x []float32, texts []string) error

// Predictor runs a trained network over a set of images in batches of a
// fixed size (the last one padded with zeros, so the graph compiles once)
// and decodes the readings.
type Predictor struct {
	Net     Net
	Charset Charset
	Batch   int
	exec    *model.Exec
}

// NewPredictor compiles the inference graph over st's weights: the
// probabilities the decoder reads and the per-example loss.
func NewPredictor(backend compute.Backend, st *model.Store, net Net, cs Charset, batch int) (*Predictor, error) {
	exec, err := model.NewExec(backend, st, func(scope *model.Scope, x, labels, lens *Node) (*Node, *Node) {
		logits := net.Logits(scope, x)
		return net.Probs(logits), net.ExampleLoss(logits, labels, lens)
	})
	if err != nil {
		return nil, err
	}
	return &Predictor{Net: net, Charset: cs, Batch: batch, exec: exec}, nil
}

// Read reads images 0 … n-1 that load gives; progress, if not nil, is
// called after each batch.
func (p *Predictor) Read(ctx context.Context, n int, load Images, progress func(done, total int)) ([]Reading, error) {
	out := make([]Reading, 0, n)
	h, w, c := p.Net.Input()
	per, b := h*w*c, p.Batch
	x := make([]float32, b*per)
	texts := make([]string, b)
	for start := 0; start < n; start += b {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m := min(b, n-start)
		clear(x)
		clear(texts)
		if err := load(ctx, start, x[:m*per], texts[:m]); err != nil {
			return nil, err
		}
		labels, lens, err := p.Charset.Labels(texts, p.Net.LabelLen())
		if err != nil {
			return nil, err
		}
		probsT, lossT, err := p.exec.Call2(tensors.FromFlatDataAndDimensions(x, b, h, w, c), labels, lens)
		if err != nil {
			return nil, fmt.Errorf("reader: %w", err)
		}
		probs := tensors.MustCopyFlatData[float32](probsT)
		losses := tensors.MustCopyFlatData[float32](lossT)
		probsT.FinalizeAll()
		lossT.FinalizeAll()
		k := len(probs) / b
		for i := range m {
			ids, conf, err := p.Net.Decode(probs[i*k : (i+1)*k])
			if err != nil {
				return nil, err
			}
			text, err := p.Charset.Text(ids)
			if err != nil {
				return nil, err
			}
			out = append(out, Reading{Text: text, Confidence: conf, Loss: float64(losses[i])})
		}
		if progress != nil {
			progress(start+m, n)
		}
	}
	return out, nil
}
