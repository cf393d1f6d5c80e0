package segment

import (
	"bufio"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/checkpoint"

	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/segment/fcn"
	"github.com/dl4img/dl4img/segment/slide"
)

// Model is a trained network ready to predict slides.
type Model struct {
	Info ModelInfo
	Dir  string // the train directory it was loaded from
	pred *fcn.Predictor
}

// LoadModel loads model.json and the best (else newest) weights from a
// segment job directory, its train directory or its checkpoints directory.
func LoadModel(backend compute.Backend, dir string) (*Model, error) {
	var train string
	for _, d := range []string{dir, filepath.Join(dir, "train"), filepath.Dir(dir), filepath.Dir(filepath.Dir(dir))} {
		if _, err := os.Stat(filepath.Join(d, "model.json")); err == nil {
			train = d
			break
		}
	}
	if train == "" {
		return nil, fmt.Errorf("model %s: no model.json here or in train/ (is it a segment job or train directory?)", dir)
	}
	b, err := os.ReadFile(filepath.Join(train, "model.json"))
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	m := &Model{Dir: train}
	if err := json.Unmarshal(b, &m.Info); err != nil {
		return nil, fmt.Errorf("model %s: %w", filepath.Join(train, "model.json"), err)
	}
	if err := m.Info.FCN.Validate(); err != nil {
		return nil, fmt.Errorf("model %s: %w", filepath.Join(train, "model.json"), err)
	}
	st, err := nn.NewSeededStore(0)
	if err != nil {
		return nil, err
	}
	if err := loadWeights(st, train); err != nil {
		return nil, fmt.Errorf("model %s: %w", train, err)
	}
	if m.pred, err = fcn.NewPredictor(backend, st, m.Info.FCN); err != nil {
		return nil, err
	}
	return m, nil
}

func loadAll(st *model.Store, dir string) error {
	if _, err := checkpoint.Build(st).Dir(dir).Immediate().Done(); err != nil {
		return fmt.Errorf("load weights from %s: %w", dir, err)
	}
	return nil
}

// PredictOptions returns the options the model was trained for.
func (m *Model) PredictOptions() PredictOptions {
	b, _ := slide.ParseBlend(m.Info.Blend)
	return PredictOptions{Level: m.Info.Level, Window: m.Info.Window, Overlap: m.Info.Overlap, Blend: b,
		Batch: m.Info.Batch, MinTissue: m.Info.MinTiss, Threshold: m.Info.Thresh}
}

// PredictOptions control sliding-window prediction of one slide.
type PredictOptions struct {
	Level     int
	Window    int // window side, a multiple of 2^depth
	Overlap   int
	Blend     slide.Blend
	Batch     int     // windows per forward pass
	MinTissue float64 // windows with less tissue are not predicted (0)
	Threshold float64
	// Cache, when set, journals each predicted window (deflated uint8
	// probabilities) so a killed prediction resumes at the next window; it
	// is removed when the mask is complete.
	Cache    string
	Progress func(done, total int)
}

// PredictStats counts a slide's windows.
type PredictStats struct {
	Windows   int // in the grid
	Predicted int // run through the network in this call
	Resumed   int // taken from the cache
	Skipped   int // below MinTissue
}

// window cache record: col, row, n (uint32 LE), n deflated bytes.
const cacheMagic = "dl4img-windows-1\n"

type windowCache struct {
	f    *os.File
	r    *bufio.Reader
	w    *bufio.Writer
	off  int64 // end of the last good record
	prob []float32
}

func openWindowCache(path, sig string) (*windowCache, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("window cache: %w", err)
	}
	head := cacheMagic + sig + "\n"
	buf := make([]byte, len(head))
	if n, _ := io.ReadFull(f, buf); n < len(head) || string(buf) != head {
		// New, torn or for other options: start over.
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, err
		}
		if _, err := f.WriteAt([]byte(head), 0); err != nil {
			f.Close()
			return nil, err
		}
		if _, err := f.Seek(int64(len(head)), io.SeekStart); err != nil {
			f.Close()
			return nil, err
		}
	}
	return &windowCache{f: f, r: bufio.NewReader(f), off: int64(len(head))}, nil
}

// next reads the next journaled window, if it is (col, row).
func (c *windowCache) next(col, row, n int) ([]float32, bool) {
	if c.r == nil {
		return nil, false
	}
	var hdr [12]byte
	ok := func() bool {
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			return false
		}
		if int(binary.LittleEndian.Uint32(hdr[0:])) != col || int(binary.LittleEndian.Uint32(hdr[4:])) != row {
			return false
		}
		sz := binary.LittleEndian.Uint32(hdr[8:])
		if sz > 1<<28 {
			return false
		}
		comp := make([]byte, sz)
		if _, err := io.ReadFull(c.r, comp); err != nil {
			return false
		}
		raw, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(comp)), int64(n)+1))
		if err != nil || len(raw) != n {
			return false
		}
		c.prob = make([]float32, n)
		for i, v := range raw {
			c.prob[i] = float32(v) / 255
		}
		c.off += 12 + int64(sz)
		return true
	}()
	if !ok {
		c.r = nil // the rest is recomputed (and overwritten)
		return nil, false
	}
	return c.prob, true
}

func (c *windowCache) startWriting() error {
	if c.w != nil {
		return nil
	}
	c.r = nil
	if err := c.f.Truncate(c.off); err != nil {
		return err
	}
	if _, err := c.f.Seek(c.off, io.SeekStart); err != nil {
		return err
	}
	c.w = bufio.NewWriterSize(c.f, 1<<16)
	return nil
}

func (c *windowCache) add(col, row int, q []byte) error {
	if err := c.startWriting(); err != nil {
		return err
	}
	var comp bytes.Buffer
	fw, _ := flate.NewWriter(&comp, flate.BestSpeed)
	fw.Write(q)
	fw.Close()
	var hdr [12]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(col))
	binary.LittleEndian.PutUint32(hdr[4:], uint32(row))
	binary.LittleEndian.PutUint32(hdr[8:], uint32(comp.Len()))
	c.w.Write(hdr[:])
	_, err := c.w.Write(comp.Bytes())
	return err
}

func (c *windowCache) flush() error {
	if c.w == nil {
		return nil
	}
	return c.w.Flush()
}

func (c *windowCache) close() error { return errors.Join(c.flush(), c.f.Close()) }

// quantize rounds probabilities to the uint8 steps the cache stores, so a
// resumed prediction stitches exactly what an uninterrupted one would.
func quantize(p []float32, q []byte) {
	for i, v := range p {
		q[i] = uint8(min(max(v, 0), 1)*255 + 0.5)
		p[i] = float32(q[i]) / 255
	}
}

// PredictSlide predicts slide s window by window over its tissue and
// stitches the probabilities (uint8, 255 = 1) into a tiled, deflate GeoTIFF
// with overviews at outPath, in the pixels of level o.Level.
func PredictSlide(ctx context.Context, m *Model, s *slide.Slide, outPath string, o PredictOptions) (PredictStats, error) {
	var stats PredictStats
	if o.Level < 0 || o.Level >= s.Levels() {
		return stats, fmt.Errorf("predict %s: level %d: slide has %d levels", s.Path(), o.Level, s.Levels())
	}
	if mu := m.Info.FCN.Multiple(); o.Window < mu || o.Window%mu != 0 {
		return stats, fmt.Errorf("predict %s: window %d must be a multiple of %d", s.Path(), o.Window, mu)
	}
	if o.Batch < 1 {
		o.Batch = 1
	}
	tissue, err := slide.DetectTissue(s, slide.TissueOptions{})
	if err != nil {
		return stats, fmt.Errorf("predict %s: %w", s.Path(), err)
	}
	size := s.Size(o.Level)
	st, err := slide.NewStitcher(outPath, slide.StitchOptions{Width: size.X, Height: size.Y, Window: o.Window,
		Overlap: o.Overlap, Blend: o.Blend})
	if err != nil {
		return stats, err
	}
	var cache *windowCache
	if o.Cache != "" {
		sig := fmt.Sprintf("%s %dx%d level=%d window=%d overlap=%d min_tissue=%g model=%s", filepath.Base(s.Path()),
			size.X, size.Y, o.Level, o.Window, o.Overlap, o.MinTissue, m.Dir)
		if cache, err = openWindowCache(o.Cache, sig); err != nil {
			st.Abort()
			return stats, err
		}
	}
	fail := func(err error) (PredictStats, error) {
		st.Abort()
		if cache != nil {
			cache.close()
		}
		return stats, fmt.Errorf("predict %s: %w", s.Path(), err)
	}
	fx, fy := s.Downsample(o.Level)
	cols, rows := st.Grid()
	stats.Windows = cols * rows
	stride := o.Window - o.Overlap
	n := o.Window * o.Window
	type win struct{ col, row int }
	var pend []win
	var imgs []*image.NRGBA
	q := make([]byte, n)
	run := func() error {
		if len(pend) == 0 {
			return nil
		}
		k := len(imgs)
		for len(imgs) < o.Batch {
			imgs = append(imgs, imgs[0])
		}
		probs, err := m.pred.Predict(imgs)
		if err != nil {
			return err
		}
		for i, w := range pend[:k] {
			quantize(probs[i], q)
			if cache != nil {
				if err := cache.add(w.col, w.row, q); err != nil {
					return err
				}
			}
			if err := st.Add(w.col, w.row, probs[i]); err != nil {
				return err
			}
		}
		stats.Predicted += k
		pend, imgs = pend[:0], imgs[:0]
		if cache != nil {
			return cache.flush()
		}
		return nil
	}
	for row := range rows {
		for col := range cols {
			if err := ctx.Err(); err != nil {
				return fail(err)
			}
			r := image.Rect(col*stride, row*stride, col*stride+o.Window, row*stride+o.Window)
			// Windows without tissue are not predicted (their pixels stay 0).
			if f := tissue.Fraction(scaleRect(r.Intersect(image.Rectangle{Max: size}), fx, fy)); f == 0 || f < o.MinTissue {
				stats.Skipped++
				continue
			}
			if cache != nil && len(pend) == 0 {
				if p, ok := cache.next(col, row, n); ok {
					if err := st.Add(col, row, p); err != nil {
						return fail(err)
					}
					stats.Resumed++
					continue
				}
			}
			img, err := s.ReadRegion(o.Level, r)
			if err != nil {
				return fail(err)
			}
			pend = append(pend, win{col, row})
			imgs = append(imgs, img)
			if len(pend) == o.Batch {
				if err := run(); err != nil {
					return fail(err)
				}
			}
		}
		if o.Progress != nil {
			o.Progress(row+1, rows)
		}
	}
	if err := run(); err != nil {
		return fail(err)
	}
	if err := st.Close(); err != nil {
		if cache != nil {
			cache.close()
		}
		return stats, err
	}
	if cache != nil {
		cache.close()
		os.Remove(o.Cache)
	}
	return stats, nil
}

// SlideResult is the outcome of predicting one slide.
type SlideResult struct {
	Slide          string  `json:"slide"`
	MaskPath       string  `json:"mask_path"`
	OverlayPath    string  `json:"overlay_path"`
	TumourFraction float64 `json:"tumour_fraction"` // predicted tumour share of the slide
	TumourArea     float64 `json:"tumour_area_px"`  // predicted tumour area in level-0 pixels
	HasTruth       bool    `json:"has_truth"`
	Dice           float64 `json:"dice"`
	IoU            float64 `json:"iou"`
	Accuracy       float64 `json:"pixel_accuracy"`
	TruthFraction  float64 `json:"truth_fraction"`
	Stats          PredictStats
}

// PredictFile predicts the slide at path into outDir/STEM_pred.tif and
// STEM_overlay.png, and scores it against maskPath when given.
func PredictFile(ctx context.Context, m *Model, path, maskPath, outDir string, o PredictOptions) (SlideResult, error) {
	res := SlideResult{Slide: filepath.Base(path)}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return res, err
	}
	s, err := slide.Open(path)
	if err != nil {
		return res, err
	}
	defer s.Close()
	stem := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	res.MaskPath = filepath.Join(outDir, stem+"_pred.tif")
	res.OverlayPath = filepath.Join(outDir, stem+"_overlay.png")
	if res.Stats, err = PredictSlide(ctx, m, s, res.MaskPath, o); err != nil {
		return res, err
	}
	return res, scoreSlide(ctx, s, &res, maskPath, o)
}

// scoreSlide scores the prediction raster res.MaskPath of slide s against
// maskPath (when given), measures the predicted tumour and draws the
// overlay at res.OverlayPath.
func scoreSlide(ctx context.Context, s *slide.Slide, res *SlideResult, maskPath string, o PredictOptions) error {
	path := s.Path()
	var err error
	var truth *slide.Mask
	if maskPath != "" {
		if truth, err = slide.OpenMask(maskPath, s.Size(0)); err != nil {
			return err
		}
		defer truth.Close()
	}
	thr := o.Threshold
	if thr == 0 {
		thr = 0.5
	}
	var met slide.Metrics
	if truth != nil {
		if met, err = slide.ComparePrediction(ctx, res.MaskPath, thr, truth); err != nil {
			return fmt.Errorf("score %s: %w", path, err)
		}
		res.HasTruth = true
		res.Dice, res.IoU, res.Accuracy = met.Dice(), met.IoU(), met.Accuracy()
		res.TruthFraction = float64(met.TruthArea()) / float64(max(met.Total(), 1))
	} else if met, err = countTumour(ctx, res.MaskPath, thr); err != nil {
		return err
	}
	fx, fy := s.Downsample(o.Level)
	res.TumourFraction = met.TumourFraction()
	res.TumourArea = float64(met.PredArea()) * fx * fy
	return slide.WriteOverlay(s, res.MaskPath, res.OverlayPath, slide.OverlayOptions{Threshold: thr, Truth: truth})
}

// countTumour streams a prediction raster and counts pixels ≥ thr.
func countTumour(ctx context.Context, path string, thr float64) (slide.Metrics, error) {
	var m slide.Metrics
	r, err := slide.OpenRaster(path)
	if err != nil {
		return m, err
	}
	defer r.Close()
	sz := r.Size()
	for y := 0; y < sz.Y; y += 256 {
		if err := ctx.Err(); err != nil {
			return m, err
		}
		h := min(256, sz.Y-y)
		p, err := r.Read(image.Rect(0, y, sz.X, y+h), image.Pt(sz.X, h))
		if err != nil {
			return m, err
		}
		for _, v := range p {
			m.Add(float64(v) >= thr, false)
		}
	}
	return m, nil
}
