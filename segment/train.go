package segment

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/segment/augment"
	"github.com/dl4img/dl4img/segment/fcn"
	"github.com/dl4img/dl4img/segment/slide"
	"github.com/dl4img/dl4img/tasks"
)

func scaleRect(r image.Rectangle, fx, fy float64) image.Rectangle {
	return image.Rect(int(float64(r.Min.X)*fx), int(float64(r.Min.Y)*fy),
		int(math.Ceil(float64(r.Max.X)*fx)), int(math.Ceil(float64(r.Max.Y)*fy)))
}

// ModelInfo is saved as model.json next to the checkpoints: what prediction
// needs to rebuild the network and feed it the same pixels.
type ModelInfo struct {
	FCN     fcn.Config `json:"fcn"`
	Level   int        `json:"level"`
	Window  int        `json:"window"`
	Overlap int        `json:"overlap"`
	Blend   string     `json:"blend"`
	Batch   int        `json:"batch"`
	Thresh  float64    `json:"threshold"`
	MinTiss float64    `json:"min_tissue"`
}

func trainDir(jobDir string) string { return filepath.Join(jobDir, "train") }

// pairSource reads (image, mask) pairs of manifest tiles, keeping open
// slides and a bounded cache of decoded pairs.
type pairSource struct {
	mu     sync.Mutex
	slides map[string]*slide.Slide
	masks  map[string]*slide.Mask
	paths  map[string]slideEntry
	cache  map[string]augment.Pair
	bytes  int64
	budget int64
}

func newPairSource(idx []slideEntry, cacheMB int) *pairSource {
	ps := &pairSource{slides: map[string]*slide.Slide{}, masks: map[string]*slide.Mask{}, paths: map[string]slideEntry{},
		cache: map[string]augment.Pair{}, budget: int64(cacheMB) << 20}
	for _, e := range idx {
		ps.paths[e.Name] = e
	}
	return ps
}

func (ps *pairSource) close() {
	for _, s := range ps.slides {
		s.Close()
	}
	for _, m := range ps.masks {
		m.Close()
	}
}

// pair returns the tile's pixels and ground truth (callers must not modify
// them: augmentations return new images).
func (ps *pairSource) pair(t Tile) (augment.Pair, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if p, ok := ps.cache[t.Key()]; ok {
		return p, nil
	}
	e, ok := ps.paths[t.Slide]
	if !ok {
		return augment.Pair{}, fmt.Errorf("tile %s: slide not in the index", t.Key())
	}
	s := ps.slides[t.Slide]
	if s == nil {
		var err error
		if s, err = slide.Open(e.Path); err != nil {
			return augment.Pair{}, err
		}
		ps.slides[t.Slide] = s
	}
	m := ps.masks[t.Slide]
	if m == nil {
		if e.Mask == "" {
			return augment.Pair{}, fmt.Errorf("tile %s: slide has no mask", t.Key())
		}
		var err error
		if m, err = slide.OpenMask(e.Mask, s.Size(0)); err != nil {
			return augment.Pair{}, err
		}
		ps.masks[t.Slide] = m
	}
	img, err := s.ReadRegion(t.Level, t.Rect())
	if err != nil {
		return augment.Pair{}, err
	}
	img.Rect = img.Rect.Sub(img.Rect.Min)
	fx, fy := s.Downsample(t.Level)
	mk, err := m.ReadRegion(scaleRect(t.Rect(), fx, fy), image.Pt(t.Size, t.Size))
	if err != nil {
		return augment.Pair{}, fmt.Errorf("tile %s mask: %w", t.Key(), err)
	}
	mk.Rect = mk.Rect.Sub(mk.Rect.Min)
	p := augment.Pair{Image: img, Mask: mk}
	if n := int64(len(img.Pix) + len(mk.Pix)); ps.bytes+n <= ps.budget {
		ps.cache[t.Key()] = p
		ps.bytes += n
	}
	return p, nil
}

// sampler draws class-balanced, augmented training batches.
type sampler struct {
	src            *pairSource
	tumour, normal []Tile
	batch, patch   int
	seed           int64
	aug            augment.Options
}

func newSampler(src *pairSource, train []Tile, p *Params) (*sampler, error) {
	s := &sampler{src: src, batch: p.BatchSize, patch: p.patch(), seed: p.Seed}
	for _, t := range train {
		if t.TumourFrac >= p.TumourTile {
			s.tumour = append(s.tumour, t)
		} else {
			s.normal = append(s.normal, t)
		}
	}
	if len(s.tumour)+len(s.normal) == 0 {
		return nil, fmt.Errorf("no training tiles in the manifest")
	}
	if p.Augment {
		s.aug = augment.Options{Flip: true, Rotate: true,
			Color: augment.Jitter{HED: p.ColorJit, Saturation: p.ColorJit, Brightness: p.ColorJit, Hue: p.ColorJit / 4}}
	}
	if p.Crop > 0 && p.Crop < p.TileSize {
		s.aug.CropSize = p.Crop
	}
	return s, nil
}

// batch of a global step: depends only on seed and step, so a resumed run
// sees what an uninterrupted one would have.
func (s *sampler) batchAt(step int) (x, y *tensors.Tensor, err error) {
	rng := rand.New(rand.NewPCG(uint64(s.seed), uint64(step)^0x5e6))
	imgs := make([]*image.NRGBA, s.batch)
	masks := make([]*image.Gray, s.batch)
	for i := range s.batch {
		// Alternate classes: half tumour, half normal tiles, whatever the
		// slides' proportions.
		cls := s.tumour
		if (i%2 == 1 && len(s.normal) > 0) || len(s.tumour) == 0 {
			cls = s.normal
		}
		t := cls[rng.IntN(len(cls))]
		p, err := s.src.pair(t)
		if err != nil {
			return nil, nil, err
		}
		if s.aug != (augment.Options{}) {
			if p, err = augment.Random(p, s.aug, rng); err != nil {
				return nil, nil, err
			}
		}
		imgs[i], masks[i] = p.Image, p.Mask
	}
	if x, err = fcn.Input(imgs); err != nil {
		return nil, nil, err
	}
	if y, err = fcn.Labels(masks); err != nil {
		return nil, nil, err
	}
	return x, y, nil
}

// centerCrop cuts the central side² part of a pair.
func centerCrop(p augment.Pair, side int) (augment.Pair, error) {
	w, h := p.Image.Rect.Dx(), p.Image.Rect.Dy()
	if side >= w && side >= h {
		return p, nil
	}
	x, y := (w-side)/2, (h-side)/2
	return augment.Crop(p, image.Rect(x, y, x+side, y+side))
}

// scores accumulates validation loss terms and the pixel confusion matrix.
type scores struct {
	bce        float64
	inter, sum float64
	n          int64
	m          slide.Metrics
}

func (s *scores) add(prob []float32, mask *image.Gray, thr float64) {
	w := mask.Rect.Dx()
	for i, p := range prob {
		y := mask.Pix[(i/w)*mask.Stride+i%w] != 0
		pc := math.Min(math.Max(float64(p), 1e-7), 1-1e-7)
		if y {
			s.bce -= math.Log(pc)
			s.inter += float64(p)
			s.sum++
		} else {
			s.bce -= math.Log(1 - pc)
		}
		s.sum += float64(p)
		s.n++
		s.m.Add(float64(p) >= thr, y)
	}
}

func (s *scores) metrics(lossName string) map[string]float64 {
	bce := s.bce / float64(max(s.n, 1))
	dice := 1 - (2*s.inter+1)/(s.sum+1)
	l := bce + dice
	switch lossName {
	case "bce":
		l = bce
	case "dice":
		l = dice
	}
	return map[string]float64{"val_loss": l, "val_bce": bce, "val_dice": s.m.Dice(), "val_iou": s.m.IoU(), "val_acc": s.m.Accuracy()}
}

func trainTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	idx, err := readIndex(env)
	if err != nil {
		return err
	}
	tiles, err := ReadManifest(manifestPath(env))
	if err != nil {
		return err
	}
	var trn, val []Tile
	for _, t := range tiles {
		switch t.Split {
		case "train":
			trn = append(trn, t)
		case "val":
			val = append(val, t)
		}
	}
	// A fixed, seeded subset of validation tiles, so epochs are comparable.
	rng := rand.New(rand.NewPCG(uint64(p.Seed), 0x7a1))
	rng.Shuffle(len(val), func(i, j int) { val[i], val[j] = val[j], val[i] })
	val = val[:min(len(val), p.MaxVal)]
	sort.Slice(val, func(i, j int) bool { return val[i].Key() < val[j].Key() })

	src := newPairSource(idx, p.CacheMB)
	defer src.close()
	smp, err := newSampler(src, trn, p)
	if err != nil {
		return err
	}
	env.Logf("training on %d tiles (%d tumour, %d normal), validating on %d", len(trn), len(smp.tumour), len(smp.normal), len(val))

	cfg := p.fcnConfig()
	info := ModelInfo{FCN: cfg, Level: p.Level, Window: p.TileSize, Overlap: p.PredOverlap, Blend: p.Blend,
		Batch: p.PredBatch, Thresh: p.Threshold, MinTiss: p.MinTissue}
	dir := trainDir(env.JobDir())
	if err := tasks.WriteJSONFile(filepath.Join(dir, "model.json"), info); err != nil {
		return err
	}
	backend, err := env.Backend()
	if err != nil {
		return err
	}
	st, err := nn.NewSeededStore(p.Seed)
	if err != nil {
		return err
	}
	ck, err := tasks.OpenCheckpoints(env, st, filepath.Join(dir, "checkpoints"), 3)
	if err != nil {
		return err
	}
	lossFn, err := fcn.LossFn(cfg)
	if err != nil {
		return err
	}
	trainer := train.NewTrainer(backend, st, fcn.Logits(cfg), lossFn,
		optimizer.Adam().LearningRate(p.LearningRate).Done(), nil, nil)
	pred, err := fcn.NewPredictor(backend, st, cfg)
	if err != nil {
		return err
	}
	lrs := []float64{p.LearningRate}
	if p.Patience > 0 {
		lrs = append(lrs, p.LearningRate/10)
	}
	loop := &tasks.Loop{
		Env: env, Store: st, Trainer: trainer, Checkpoints: ck,
		Epochs: p.Epochs, StepsPerEpoch: p.StepsPerEpoch, CheckpointEvery: p.Checkpoint,
		LearningRates: lrs, Patience: p.Patience, Monitor: "val_dice",
		Batch: func(_ context.Context, step int) (train.Batch, error) {
			x, y, err := smp.batchAt(step)
			if err != nil {
				return train.Batch{}, err
			}
			return train.Batch{Inputs: []*tensors.Tensor{x}, Labels: []*tensors.Tensor{y}}, nil
		},
		Validate: func(ctx context.Context) (map[string]float64, error) {
			return validate(ctx, pred, src, val, p)
		},
	}
	if len(val) == 0 {
		env.Logf("no validation tiles (val_fraction %g): the last epoch's weights are kept", p.ValFraction)
		loop.Validate, loop.Monitor = nil, ""
	}
	_, err = loop.Run(ctx)
	return err
}

// validate scores the current weights on the validation tiles.
func validate(ctx context.Context, pred *fcn.Predictor, src *pairSource, val []Tile, p *Params) (map[string]float64, error) {
	var sc scores
	for i := 0; i < len(val); i += p.BatchSize {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		imgs := make([]*image.NRGBA, 0, p.BatchSize)
		masks := make([]*image.Gray, 0, p.BatchSize)
		for _, t := range val[i:min(i+p.BatchSize, len(val))] {
			pr, err := src.pair(t)
			if err != nil {
				return nil, err
			}
			if pr, err = centerCrop(pr, p.patch()); err != nil {
				return nil, err
			}
			imgs, masks = append(imgs, pr.Image), append(masks, pr.Mask)
		}
		n := len(imgs)
		for len(imgs) < p.BatchSize { // one compiled shape
			imgs = append(imgs, imgs[0])
		}
		probs, err := pred.Predict(imgs)
		if err != nil {
			return nil, err
		}
		for k := range n {
			sc.add(probs[k], masks[k], p.Threshold)
		}
	}
	return sc.metrics(p.Loss), nil
}

// loadWeights fills st with the best (else newest) weights under a train dir.
func loadWeights(st *model.Store, dir string) error {
	best := filepath.Join(dir, "checkpoints", "best")
	if _, err := os.Stat(best); err == nil {
		return loadAll(st, best)
	}
	ck, err := tasks.OpenCheckpoints(nil, st, filepath.Join(dir, "checkpoints"), 3)
	if err != nil {
		return err
	}
	_ = ck
	if optimizer.GetGlobalStep(st) == 0 {
		return fmt.Errorf("no trained checkpoint in %s", filepath.Join(dir, "checkpoints"))
	}
	return nil
}
