// Package segment is the `segment` job kind: whole-slide tumour
// segmentation as in the book's pathology chapter. Slides (any GDAL raster)
// and their masks are tiled over tissue into a manifest (resumable per
// tile), an FCN (segment/fcn) is trained on class-balanced, augmented
// patches, and test slides are predicted window by window and stitched into
// tiled GeoTIFF masks with overlays, per-slide metrics and submission.csv.
package segment

import (
	"errors"
	"fmt"

	"github.com/dl4img/dl4img/segment/fcn"
	"github.com/dl4img/dl4img/segment/slide"
	"github.com/dl4img/dl4img/tasks"
)

// Params of the segment kind.
type Params struct {
	tasks.Common
	Slides     string `json:"slides" doc:"folder of slides (any GDAL raster: TIFF, BigTIFF, SVS, PNG, JPEG); empty: generate synthetic slides"`
	Masks      string `json:"masks" doc:"folder of ground-truth masks named like the slides (SLIDE.tif, SLIDE_mask.tif, SLIDE.geojson; 0 = background, >0 = tumour); default: the slides folder"`
	TestSlides int    `json:"test_slides" doc:"without test_dir: hold out the last N slides (sorted by name) for prediction and the submission"`

	SynthSlides int     `json:"synth_slides" doc:"synthetic slides generated when slides is empty (the last test_slides are held out)"`
	SynthSize   int     `json:"synth_size" doc:"side in pixels of each synthetic slide"`
	SynthTumour float64 `json:"synth_tumour" doc:"rough share of the tissue covered by tumour in synthetic slides"`

	Level      int     `json:"level" doc:"slide level tiles, training and prediction use (0 = full resolution)"`
	TileSize   int     `json:"tile_size" doc:"tile and prediction window side in pixels of that level (a multiple of 2^depth)"`
	Overlap    int     `json:"overlap" doc:"overlap of neighbouring tiles in the manifest"`
	MinTissue  float64 `json:"min_tissue" doc:"tiles and windows with less tissue than this fraction are skipped"`
	TileFormat string  `json:"tile_format" doc:"also export tiles as none, jpeg or png (under JOBDIR/tiles/SLIDE/)"`
	TumourTile float64 `json:"tumour_tile" doc:"tiles with at least this tumour fraction are the tumour class of balanced sampling"`

	Crop       int     `json:"crop" doc:"training patch side: random crops of tiles (0 = whole tiles)"`
	Augment    bool    `json:"augment" doc:"random flips, 90° rotations and HED/HSV colour jitter of training patches"`
	ColorJit   float64 `json:"color_jitter" doc:"strength of the colour jitter (HED ±s, saturation/brightness ±s, hue ±s/4)"`
	Filters    int     `json:"filters" doc:"FCN channels of the first level, doubled per level"`
	Depth      int     `json:"depth" doc:"FCN downsamplings (encoder levels)"`
	Convs      int     `json:"convs_per_level" doc:"3×3 convolutions per FCN level"`
	L2         float64 `json:"l2" doc:"l2 regularization λ of the transposed-convolution (decoder) kernels"`
	Loss       string  `json:"loss" doc:"bce, dice or bce+dice"`
	MaxVal     int     `json:"max_val_tiles" doc:"validation tiles scored each epoch"`
	Patience   int     `json:"patience" doc:"epochs without val_dice improvement before the learning rate drops 10× (best weights reloaded); 0 = never"`
	CacheMB    int     `json:"cache_mb" doc:"memory for caching training tiles (MiB)"`
	Checkpoint int     `json:"checkpoint_every" doc:"save a checkpoint every N steps (0 = each epoch)"`

	PredOverlap int     `json:"pred_overlap" doc:"overlap of prediction windows in pixels"`
	Blend       string  `json:"blend" doc:"blending of overlapping windows: constant, gaussian or center"`
	PredBatch   int     `json:"pred_batch" doc:"windows per forward pass"`
	Threshold   float64 `json:"threshold" doc:"probability above which a pixel is tumour (metrics, overlay)"`
}

func defaults() any {
	return &Params{
		Common: tasks.Common{Epochs: 10, StepsPerEpoch: 200, BatchSize: 8, LearningRate: 1e-3,
			ValFraction: 0.15, Seed: 1},
		TestSlides: 1, SynthSlides: 2, SynthSize: 4096, SynthTumour: 0.3,
		Level: 1, TileSize: 256, MinTissue: 0.1, TileFormat: "none", TumourTile: 0.5,
		Augment: true, ColorJit: 0.05, Filters: 16, Depth: 3, Convs: 2, L2: 1e-4, Loss: "bce+dice",
		MaxVal: 64, CacheMB: 512,
		PredOverlap: 32, Blend: "gaussian", PredBatch: 8, Threshold: 0.5,
	}
}

// Validate checks the parameters.
func (p *Params) Validate() error {
	if err := p.Common.Validate(); err != nil {
		return err
	}
	cfg := p.fcnConfig()
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("parameter %w", err)
	}
	m := cfg.Multiple()
	patch := p.patch()
	switch {
	case p.Epochs < 1 || p.StepsPerEpoch < 1:
		return errors.New("parameters epochs and steps_per_epoch: must be >= 1")
	case p.BatchSize < 1:
		return errors.New("parameter batch_size: must be >= 1")
	case p.TestSlides < 0:
		return errors.New("parameter test_slides: must be >= 0")
	case p.Slides == "" && (p.SynthSlides < 1 || p.SynthSlides <= p.TestSlides && p.TestDir == ""):
		return fmt.Errorf("parameter synth_slides %d: need more than test_slides (%d) to train on", p.SynthSlides, p.TestSlides)
	case p.Slides == "" && (p.SynthSize < 256 || p.SynthSize > 200000):
		return errors.New("parameter synth_size: must be in [256, 200000]")
	case p.SynthTumour <= 0 || p.SynthTumour > 1:
		return errors.New("parameter synth_tumour: must be in (0, 1]")
	case p.Level < 0:
		return errors.New("parameter level: must be >= 0")
	case p.TileSize < m || p.TileSize%m != 0:
		return fmt.Errorf("parameter tile_size %d: must be a positive multiple of %d (2^depth)", p.TileSize, m)
	case p.Overlap < 0 || p.Overlap >= p.TileSize:
		return errors.New("parameter overlap: must be in [0, tile_size)")
	case p.Crop < 0 || p.Crop > p.TileSize || patch%m != 0:
		return fmt.Errorf("parameter crop %d: must be 0 or a multiple of %d not above tile_size", p.Crop, m)
	case p.MinTissue < 0 || p.MinTissue > 1:
		return errors.New("parameter min_tissue: must be in [0, 1]")
	case p.TileFormat != "none" && p.TileFormat != "jpeg" && p.TileFormat != "png":
		return fmt.Errorf("parameter tile_format %q: want none, jpeg or png", p.TileFormat)
	case p.TumourTile <= 0 || p.TumourTile > 1:
		return errors.New("parameter tumour_tile: must be in (0, 1]")
	case p.ColorJit < 0 || p.ColorJit > 0.5:
		return errors.New("parameter color_jitter: must be in [0, 0.5]")
	case p.MaxVal < 1:
		return errors.New("parameter max_val_tiles: must be >= 1")
	case p.Patience < 0 || p.CacheMB < 0 || p.Checkpoint < 0:
		return errors.New("parameters patience, cache_mb, checkpoint_every: must be >= 0")
	case p.PredOverlap < 0 || p.PredOverlap >= p.TileSize:
		return errors.New("parameter pred_overlap: must be in [0, tile_size)")
	case p.PredBatch < 1:
		return errors.New("parameter pred_batch: must be >= 1")
	case p.Threshold <= 0 || p.Threshold >= 1:
		return errors.New("parameter threshold: must be in (0, 1)")
	}
	if _, err := slide.ParseBlend(p.Blend); err != nil {
		return fmt.Errorf("parameter %w", err)
	}
	return nil
}

func (p *Params) fcnConfig() fcn.Config {
	return fcn.Config{Filters: p.Filters, Depth: p.Depth, ConvsPerLevel: p.Convs, L2: p.L2, Loss: p.Loss}
}

// patch is the training patch side.
func (p *Params) patch() int {
	if p.Crop > 0 {
		return p.Crop
	}
	return p.TileSize
}

// Register adds the segment kinds to r.
func Register(r *tasks.Registry) {
	r.RegisterJob(tasks.JobKind{
		Name: "segment",
		Doc: "whole-slide tumour segmentation: tissue tiling (resumable manifest) → FCN with l2-regularized " +
			"deconvolution, augmentation → sliding-window prediction stitched into tiled GeoTIFF masks, overlays, Dice/IoU → submission.csv",
		NewParams: defaults,
		Headline:  "val_dice",
		Presets: map[string]map[string]any{
			// Two 2048² synthetic slides (one held out), 4× downsampled: a few
			// minutes on 2 CPU cores.
			"demo": {"synth_slides": 2, "synth_size": 2048, "level": 2, "tile_size": 64, "pred_overlap": 16,
				"filters": 8, "depth": 2, "epochs": 4, "steps_per_epoch": 40, "batch_size": 8, "learning_rate": 3e-3,
				"max_val_tiles": 32, "min_tissue": 0.05},
			"quick": {"synth_slides": 2, "synth_size": 1024, "level": 2, "tile_size": 32, "pred_overlap": 8,
				"filters": 4, "depth": 1, "convs_per_level": 1, "epochs": 2, "steps_per_epoch": 10, "batch_size": 4,
				"learning_rate": 3e-3, "max_val_tiles": 8, "min_tissue": 0.05},
		},
		Plan: func(any) ([]tasks.TaskSpec, error) {
			return []tasks.TaskSpec{
				{Name: "data", Kind: "segment.data"},
				{Name: "tile", Kind: "segment.tile", Deps: []string{"data"}},
				{Name: "train", Kind: "segment.train", Deps: []string{"tile"}},
				{Name: "predict", Kind: "segment.predict", Deps: []string{"train"}},
				{Name: "submit", Kind: "segment.submit", Deps: []string{"predict"}},
			}, nil
		},
	})
	r.RegisterTask("segment.data", dataTask)
	r.RegisterTask("segment.tile", tileTask)
	r.RegisterTask("segment.train", trainTask)
	r.RegisterTask("segment.predict", predictTask)
	r.RegisterTask("segment.submit", submitTask)
}

func init() { Register(tasks.Default) }

func decode(raw []byte) (*Params, error) {
	p := defaults().(*Params)
	if err := tasks.Decode(raw, p); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}
