package formula

import (
	"context"
	"fmt"
	"image"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/ocr/formula/lines"
	"github.com/dl4img/dl4img/ocr/formula/synth"
	"github.com/dl4img/dl4img/ocr/reader"
)

// charset is the reader's: every character a formula label can hold.
var charset = reader.NewCharset(synth.Charset)

// MaxLabelLen bounds the joined text the reader is trained on: two
// assignments of at most 7 characters, 5 operands of at most 5 digits, 4
// operators and brackets stay well below it.
const MaxLabelLen = 64

// net is the reader of the job's strips.
func (p *JobParams) net() reader.CRNN {
	return reader.Strip(p.StripHeight, p.StripWidth, charset.Len(), MaxLabelLen, p.Filters, p.RNNHidden, p.L2)
}

// checkStrip reports strip sizes and a reader the network cannot be built
// with.
func (p *JobParams) checkStrip() error {
	switch {
	case p.StripHeight < 16 || p.StripHeight%8 != 0:
		return fmt.Errorf("strip height %d: must be a multiple of 8, >= 16", p.StripHeight)
	case p.StripWidth < 64 || p.StripWidth%4 != 0:
		return fmt.Errorf("strip width %d: must be a multiple of 4, >= 64", p.StripWidth)
	case p.Filters < 1 || p.RNNHidden < 1:
		return fmt.Errorf("filters %d and rnn_hidden %d: must be >= 1", p.Filters, p.RNNHidden)
	case p.L2 < 0:
		return fmt.Errorf("l2 %g: must be >= 0", p.L2)
	}
	return p.net().Check()
}

// encodeText checks that text is a label the reader can learn.
func encodeText(text string) error {
	_, err := charset.Encode(text, MaxLabelLen)
	return err
}

// stripInto writes a strip (StripHeight×StripWidth) as the reader's input:
// ink 1, paper 0.
func stripInto(dst []float32, s *image.Gray) {
	w, h := s.Rect.Dx(), s.Rect.Dy()
	for y := range h {
		row := s.Pix[y*s.Stride:]
		for x := range w {
			dst[y*w+x] = 1 - float32(row[x])/255
		}
	}
}

// stripTensor converts strips (each h×w) to [n, h, w, 1].
func stripTensor(strips []*image.Gray, h, w int) *tensors.Tensor {
	data := make([]float32, len(strips)*h*w)
	for i, s := range strips {
		stripInto(data[i*h*w:(i+1)*h*w], s)
	}
	return tensors.FromFlatDataAndDimensions(data, len(strips), h, w, 1)
}

// predictor is one trained reader of the job over its examples' strips.
type predictor struct {
	p *JobParams
	e *lines.Extractor
	r *reader.Predictor
}

func newPredictor(backend compute.Backend, st *model.Store, p *JobParams) (*predictor, error) {
	r, err := reader.NewPredictor(backend, st, p.net(), charset, p.BatchSize)
	if err != nil {
		return nil, err
	}
	return &predictor{p: p, e: p.extractor(), r: r}, nil
}

// read returns one reading per example (with its loss against the label);
// examples without lines read "".
func (pr *predictor) read(ctx context.Context, xs []*example, progress func(done, total int)) ([]reader.Reading, error) {
	n := pr.p.StripHeight * pr.p.StripWidth
	rs, err := pr.r.Read(ctx, len(xs), func(_ context.Context, start int, x []float32, texts []string) error {
		for k := range texts {
			ex := xs[start+k]
			texts[k] = ex.Text
			if len(ex.Crops) > 0 { // else a blank strip: zeros
				stripInto(x[k*n:(k+1)*n], pr.p.strip(pr.e, ex.Crops))
			}
		}
		return nil
	}, progress)
	if err != nil {
		return nil, err
	}
	for i, x := range xs {
		if len(x.Crops) == 0 {
			rs[i] = reader.Reading{}
		}
	}
	return rs, nil
}
