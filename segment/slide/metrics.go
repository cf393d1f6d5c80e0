package slide

import (
	"context"
	"fmt"
	"image"

	"github.com/airbusgeo/godal"
)

// Metrics is a pixel confusion matrix of a predicted mask against ground
// truth, accumulated streaming.
type Metrics struct {
	TP, FP, FN, TN int64
}

// Add counts one pixel.
func (m *Metrics) Add(pred, truth bool) {
	switch {
	case pred && truth:
		m.TP++
	case pred:
		m.FP++
	case truth:
		m.FN++
	default:
		m.TN++
	}
}

// Merge adds another confusion matrix.
func (m *Metrics) Merge(o Metrics) {
	m.TP, m.FP, m.FN, m.TN = m.TP+o.TP, m.FP+o.FP, m.FN+o.FN, m.TN+o.TN
}

// Total is the number of pixels counted.
func (m Metrics) Total() int64 { return m.TP + m.FP + m.FN + m.TN }

// Dice is 2TP/(2TP+FP+FN); 1 when both masks are empty.
func (m Metrics) Dice() float64 {
	d := 2*m.TP + m.FP + m.FN
	if d == 0 {
		return 1
	}
	return float64(2*m.TP) / float64(d)
}

// IoU is TP/(TP+FP+FN); 1 when both masks are empty.
func (m Metrics) IoU() float64 {
	d := m.TP + m.FP + m.FN
	if d == 0 {
		return 1
	}
	return float64(m.TP) / float64(d)
}

// Accuracy is the share of correctly classified pixels.
func (m Metrics) Accuracy() float64 {
	if m.Total() == 0 {
		return 0
	}
	return float64(m.TP+m.TN) / float64(m.Total())
}

// PredArea and TruthArea are tumour areas in (predicted-level) pixels.
func (m Metrics) PredArea() int64  { return m.TP + m.FP }
func (m Metrics) TruthArea() int64 { return m.TP + m.FN }

// TumourFraction is the predicted tumour share of all pixels.
func (m Metrics) TumourFraction() float64 {
	if m.Total() == 0 {
		return 0
	}
	return float64(m.PredArea()) / float64(m.Total())
}

func (m Metrics) String() string {
	return fmt.Sprintf("dice=%.4f iou=%.4f acc=%.4f tumour=%.4f", m.Dice(), m.IoU(), m.Accuracy(), m.TumourFraction())
}

// Raster is a single-band probability raster (a stitched prediction or a
// mask) read as probabilities in [0,1]: uint8 values are divided by 255.
type Raster struct {
	path  string
	ds    *godal.Dataset
	size  image.Point
	scale float32
}

// OpenRaster opens band 1 of a GDAL raster as probabilities.
func OpenRaster(path string) (*Raster, error) {
	initGDAL()
	ds, err := godal.Open(path, godal.RasterOnly(), failuresOnly())
	if err != nil {
		return nil, fmt.Errorf("open raster %s: %w", path, oneLine(err))
	}
	bands := ds.Bands()
	if len(bands) == 0 {
		ds.Close()
		return nil, fmt.Errorf("open raster %s: no bands", path)
	}
	st := ds.Structure()
	r := &Raster{path: path, ds: ds, size: image.Pt(st.SizeX, st.SizeY), scale: 1}
	if bands[0].Structure().DataType == godal.Byte {
		r.scale = 1.0 / 255
	}
	return r, nil
}

// Size is the raster size in pixels.
func (r *Raster) Size() image.Point { return r.size }

// Close releases the dataset.
func (r *Raster) Close() error {
	if r.ds == nil {
		return nil
	}
	err := r.ds.Close(failuresOnly())
	r.ds = nil
	return err
}

// Read reads rectangle rr (inside the raster) resampled to out pixels
// (nearest neighbour; GDAL uses overviews when they fit).
func (r *Raster) Read(rr image.Rectangle, out image.Point) ([]float32, error) {
	buf := make([]float32, out.X*out.Y)
	if err := r.ds.Bands()[0].Read(rr.Min.X, rr.Min.Y, buf, out.X, out.Y,
		godal.Window(rr.Dx(), rr.Dy()), failuresOnly()); err != nil {
		return nil, fmt.Errorf("read %s %v: %w", r.path, rr, err)
	}
	if r.scale != 1 {
		for i := range buf {
			buf[i] *= r.scale
		}
	}
	return buf, nil
}

// ComparePrediction streams a prediction raster (probabilities, thresholded
// at thr) against a ground-truth mask, strip by strip. The prediction may be
// at a lower level than the mask; the mask is then resampled to it.
func ComparePrediction(ctx context.Context, predPath string, thr float64, truth *Mask) (Metrics, error) {
	var m Metrics
	pred, err := OpenRaster(predPath)
	if err != nil {
		return m, err
	}
	defer pred.Close()
	ps, ts := pred.Size(), truth.Size()
	fy := float64(ts.Y) / float64(ps.Y)
	const strip = 256
	for y := 0; y < ps.Y; y += strip {
		if err := ctx.Err(); err != nil {
			return m, err
		}
		h := min(strip, ps.Y-y)
		p, err := pred.Read(image.Rect(0, y, ps.X, y+h), image.Pt(ps.X, h))
		if err != nil {
			return m, err
		}
		r0 := image.Rect(0, int(float64(y)*fy), ts.X, min(ceilF(float64(y+h)*fy), ts.Y))
		t, err := truth.ReadRegion(r0, image.Pt(ps.X, h))
		if err != nil {
			return m, err
		}
		for i, v := range p {
			m.Add(float64(v) >= thr, t.Pix[i] != 0)
		}
	}
	return m, nil
}
