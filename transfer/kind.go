package transfer

import (
	"context"
	_ "embed"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dl4img/dl4img/tasks"
)

// DemoBackbone is the backbone value that selects the embedded fixture CNN
// (testdata/transfer/tinycnn.onnx: 3 conv blocks, 64 features, pretrained
// on a generated texture task, not on ImageNet).
const DemoBackbone = "demo"

//go:embed assets/tinycnn.onnx
var demoONNX []byte

// ExportHint says how to get a real backbone; dl4img never downloads one.
const ExportHint = `export one with PyTorch, e.g. python3 -c "import torch,torchvision; m=torchvision.models.resnet50(weights='DEFAULT').eval(); torch.onnx.export(m, torch.zeros(1,3,224,224), 'resnet50.onnx', input_names=['input'], dynamic_axes={'input':{0:'batch'}})" and pass --set backbone=resnet50.onnx --set backbone_preset=resnet50-torchvision (see transfer/README.md), or use backbone=demo`

// Params of the transfer kind.
type Params struct {
	tasks.Common
	Backbone       []string  `json:"backbone" doc:"ONNX backbone files, comma-separated (their pooled features are concatenated); demo = the small embedded test CNN; scratch = train a small CNN from scratch (no transfer)"`
	BackbonePreset []string  `json:"backbone_preset" doc:"preprocessing preset per backbone (one for all allowed): resnet50-torchvision, mobilenetv2-torchvision, inceptionv3-torchvision, resnet50-keras, vgg16-keras, inceptionv3-keras, xception-keras, mobilenetv2-keras, tinycnn"`
	FeatureNode    []string  `json:"feature_node" doc:"per backbone, the ONNX node (output) to cut at; empty = what the classifier sees: the input of the final Gemm/MatMul, traced back through Flatten/Reshape/Dropout/Identity (else the last global average pool)"`
	InputSize      int       `json:"input_size" doc:"override the presets' input size (pixels, square)"`
	Resize         string    `json:"resize" doc:"override the presets' resize: squash or crop (shorter side to size*256/224, center crop)"`
	Normalize      string    `json:"normalize" doc:"override the presets' pixel scaling: imagenet (mean/std), tf ([-1,1]), caffe (BGR minus mean) or unit ([0,1])"`
	FeatureCache   string    `json:"feature_cache" doc:"feature cache folder, shared by runs (default: <workdir>/cache/transfer-features)"`
	ExtractBatch   int       `json:"extract_batch" doc:"images per feature-extraction batch"`
	SkipBad        bool      `json:"skip_bad" doc:"skip (and report) files that are not images instead of failing"`
	Dropout        float64   `json:"dropout" doc:"dropout rate before the head's dense layer"`
	HeadSteps      int       `json:"head_steps" doc:"optimizer steps of the head on the cached features, at least (epochs over the training images, if more, decide); batch_size, steps_per_epoch and patience are for finetune and scratch"`
	HeadBatch      int       `json:"head_batch" doc:"training images per head step: all of them (full batch) up to this many, else a shuffled batch of this many"`
	WeightDecay    []float64 `json:"weight_decay" doc:"L2 strengths (comma-separated) for the head and the linear probe; each is trained and the validation split picks one"`
	Patience       int       `json:"patience" doc:"finetune/scratch: epochs without val_loss improvement before the learning rate drops 10x (then stops); 0 = never"`
	Clip           float64   `json:"clip" doc:"submission probabilities are clipped to [clip, 1-clip]"`
	CAMImages      int       `json:"cam_images" doc:"class activation maps drawn for this many test (else validation) images"`
	FinetuneLayers int       `json:"finetune_layers" doc:"after the head, fine-tune the last N weighted backbone layers with it on augmented images (flips, crops); 0 = off; one backbone only"`
	FinetuneEpochs int       `json:"finetune_epochs" doc:"fine-tuning epochs"`
	FinetuneLR     float64   `json:"finetune_lr" doc:"fine-tuning learning rate (lower than the head's)"`
	SynthPerClass  int       `json:"synth_per_class" doc:"without train_dir: generated images per class (synthetic cats vs dogs)"`
	SynthTest      int       `json:"synth_test" doc:"without train_dir: generated test images"`
}

// Validate checks the parameters.
func (p *Params) Validate() error {
	if err := p.Common.Validate(); err != nil {
		return err
	}
	if len(p.Backbone) == 0 {
		return errors.New("parameter backbone: no backbone given: " + ExportHint)
	}
	if n := len(p.BackbonePreset); n != 1 && n != len(p.Backbone) {
		return fmt.Errorf("parameter backbone_preset: give one preset, or one per backbone (%d)", len(p.Backbone))
	}
	if n := len(p.FeatureNode); n != 0 && n != len(p.Backbone) {
		return fmt.Errorf("parameter feature_node: give none, or one per backbone (%d)", len(p.Backbone))
	}
	for _, b := range p.Backbone {
		if b == ScratchBackbone && len(p.Backbone) > 1 {
			return errors.New("parameter backbone: scratch trains a CNN from scratch and combines with no other backbone")
		}
	}
	if p.scratch() && p.FinetuneLayers > 0 {
		return errors.New("parameter finetune_layers: nothing to fine-tune with backbone=scratch")
	}
	for i, b := range p.Backbone {
		pre, err := p.preprocess(i)
		if err != nil {
			return err
		}
		// A backbone file this machine has is checked now, so a corrupt one,
		// one for another image size or one with an op the import lacks
		// is refused at submit time (exit 2) instead of failing the job's
		// features task. One that is only on
		// the workers' machines is checked there.
		if b = strings.TrimSpace(b); b != DemoBackbone && b != ScratchBackbone {
			if _, err := os.Stat(b); err == nil {
				if _, err := parseImageModel(b, pre.Size); err != nil {
					return fmt.Errorf("parameter backbone: %w", err)
				}
			}
		}
	}
	switch {
	case p.Epochs < 1:
		return errors.New("parameter epochs: must be >= 1")
	case p.BatchSize < 1:
		return errors.New("parameter batch_size: must be >= 1")
	case p.ExtractBatch < 1:
		return errors.New("parameter extract_batch: must be >= 1")
	case p.Dropout < 0 || p.Dropout >= 1:
		return errors.New("parameter dropout: must be in [0, 1)")
	case p.Clip < 0 || p.Clip >= 0.5:
		return errors.New("parameter clip: must be in [0, 0.5)")
	case p.CAMImages < 0 || p.Patience < 0:
		return errors.New("parameters cam_images and patience: must be >= 0")
	case p.FinetuneLayers < 0 || p.FinetuneEpochs < 1 || p.FinetuneLR <= 0:
		return errors.New("parameters finetune_layers >= 0, finetune_epochs >= 1, finetune_lr > 0")
	case p.FinetuneLayers > 0 && len(p.Backbone) != 1:
		return errors.New("parameter finetune_layers: fine-tuning needs exactly one backbone")
	case p.TrainDir == "" && (p.SynthPerClass < 2 || p.SynthTest < 0):
		return errors.New("parameter synth_per_class: must be >= 2 (no train_dir given)")
	case p.HeadSteps < 1:
		return errors.New("parameter head_steps: must be >= 1")
	case p.HeadBatch < 1:
		return errors.New("parameter head_batch: must be >= 1")
	}
	return p.validateWeightDecay()
}

// maxDecays bounds the weight-decay grid: each value is one more head
// trained side by side and one more probe fit.
const maxDecays = 16

func (p *Params) validateWeightDecay() error {
	wd := p.WeightDecay
	switch {
	case len(wd) == 0:
		return errors.New("parameter weight_decay: give at least one value (e.g. 1e-4,1e-3,1e-2,1e-1,1)")
	case len(wd) > maxDecays:
		return fmt.Errorf("parameter weight_decay: %d values, at most %d", len(wd), maxDecays)
	case len(wd) > 1 && p.ValFraction == 0 && !p.scratch():
		return errors.New("parameter weight_decay: choosing among several values needs a validation split (val_fraction > 0); give one value")
	}
	for i, v := range wd {
		if !(v >= 0) || math.IsInf(v, 0) {
			return fmt.Errorf("parameter weight_decay: %v is not a finite number >= 0", v)
		}
		if slices.Contains(wd[:i], v) {
			return fmt.Errorf("parameter weight_decay: %g is given twice", v)
		}
	}
	return nil
}

func (p *Params) preprocess(i int) (Preprocess, error) {
	name := p.BackbonePreset[0]
	if len(p.BackbonePreset) > 1 {
		name = p.BackbonePreset[i]
	}
	pre, err := parsePreset(name)
	if err != nil {
		return pre, err
	}
	if p.InputSize > 0 {
		pre.Size = p.InputSize
	}
	if p.Resize != "" {
		pre.Resize = p.Resize
	}
	if p.Normalize != "" {
		pre.Normalize = p.Normalize
	}
	if err := pre.validate(); err != nil {
		return pre, fmt.Errorf("backbone %d preprocessing: %w", i+1, err)
	}
	return pre, nil
}

func defaults() any {
	return &Params{
		Common:         tasks.Common{Epochs: 30, BatchSize: 64, LearningRate: 1e-2, ValFraction: 0.2, Seed: 1},
		BackbonePreset: []string{"resnet50-torchvision"}, ExtractBatch: 16,
		Dropout: 0.5, HeadSteps: 500, HeadBatch: 2048, WeightDecay: []float64{1e-4, 1e-3, 1e-2, 1e-1, 1}, Patience: 3, FinetuneEpochs: 3, FinetuneLR: 1e-4, Clip: 0.005, CAMImages: 4, SynthPerClass: 300, SynthTest: 100,
	}
}

// Register adds the transfer kinds to r.
func Register(r *tasks.Registry) {
	r.RegisterJob(tasks.JobKind{
		Name:      "transfer",
		Doc:       "image classification (Kaggle Dogs vs. Cats, or train/<class>/) by transfer learning: ONNX backbone features (cached), dropout+dense head, CAM, submission.csv",
		NewParams: defaults,
		Headline:  "val_loss",
		Presets: map[string]map[string]any{
			// The only backbone that can ship is the small test CNN, on
			// generated "cats vs dogs"; a real run names an ONNX export.
			"demo": {"backbone": []string{DemoBackbone}, "backbone_preset": []string{"tinycnn"},
				"synth_per_class": 200, "synth_test": 100, "epochs": 40, "batch_size": 32, "patience": 4,
				"learning_rate": 0.01},
			"kaggle": {"backbone_preset": []string{"resnet50-torchvision"}, "epochs": 20, "batch_size": 128,
				"patience": 3, "clip": 0.005},
		},
		Plan: plan,
	})
	r.RegisterTask("transfer.generate", generateTask)
	r.RegisterTask("transfer.features", featuresTask)
	r.RegisterTask("transfer.train", trainTask)
	r.RegisterTask("transfer.finetune", finetuneTask)
	r.RegisterTask("transfer.scratch", scratchTask)
	r.RegisterTask("transfer.cam", camTask)
	r.RegisterTask("transfer.submit", submitTask)
	gob.Register(Item{})
}

func init() { Register(tasks.Default) }

func plan(raw any) ([]tasks.TaskSpec, error) {
	p := raw.(*Params)
	var specs []tasks.TaskSpec
	var featDeps []string
	if p.TrainDir == "" {
		specs = append(specs, tasks.TaskSpec{Name: "generate", Kind: "transfer.generate"})
		featDeps = []string{"generate"}
	}
	last := "train"
	if p.scratch() {
		specs = append(specs, tasks.TaskSpec{Name: "scratch", Kind: "transfer.scratch", Deps: featDeps})
		last = "scratch"
	} else {
		specs = append(specs,
			tasks.TaskSpec{Name: "features", Kind: "transfer.features", Deps: featDeps},
			tasks.TaskSpec{Name: "train", Kind: "transfer.train", Deps: []string{"features"}})
	}
	if p.FinetuneLayers > 0 {
		specs = append(specs, tasks.TaskSpec{Name: "finetune", Kind: "transfer.finetune", Deps: []string{"train"}})
		last = "finetune"
	}
	if p.CAMImages > 0 {
		specs = append(specs, tasks.TaskSpec{Name: "cam", Kind: "transfer.cam", Deps: []string{last}})
	}
	if p.TestDir != "" || p.TrainDir == "" {
		specs = append(specs, tasks.TaskSpec{Name: "submit", Kind: "transfer.submit", Deps: []string{last}})
	}
	return specs, nil
}

func decode(raw json.RawMessage) (*Params, error) {
	p := defaults().(*Params)
	if err := tasks.Decode(raw, p); err != nil {
		return nil, err
	}
	return p, nil
}

// dirs returns the train and test folders (generated ones by default).
func (p *Params) dirs(env tasks.Env) (train, test string) {
	if p.TrainDir == "" {
		return filepath.Join(env.JobDir(), "data", "train"), filepath.Join(env.JobDir(), "data", "test")
	}
	return p.TrainDir, p.TestDir
}

func (p *Params) cacheDir(env tasks.Env) string {
	if p.FeatureCache != "" {
		return p.FeatureCache
	}
	return filepath.Join(filepath.Dir(filepath.Clean(env.JobDir())), "cache", "transfer-features")
}

func generateTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	dir := filepath.Join(env.JobDir(), "data")
	size := 64
	if pre, err := p.preprocess(0); err == nil {
		size = pre.Size
	}
	return GenerateSynth(ctx, dir, p.SynthPerClass, p.SynthTest, size, p.Seed, func(done, total int) {
		env.Progress("generate", done, total)
	})
}

// backbonePath resolves "demo" to the embedded CNN, written once into the
// job folder.
func backbonePath(env tasks.Env, b string) (string, error) {
	if b == ScratchBackbone {
		return "", errors.New("backbone=scratch has no ONNX file")
	}
	if b != DemoBackbone {
		return b, nil
	}
	path := filepath.Join(env.JobDir(), "tinycnn.onnx")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	return path, tasks.WriteFileAtomic(path, func(w io.Writer) error {
		_, err := w.Write(demoONNX)
		return err
	})
}

func loadBackbones(env tasks.Env, p *Params) ([]*Backbone, error) {
	backend, err := env.Backend()
	if err != nil {
		return nil, err
	}
	var out []*Backbone
	for i, b := range p.Backbone {
		path, err := backbonePath(env, strings.TrimSpace(b))
		if err != nil {
			return nil, err
		}
		pre, err := p.preprocess(i)
		if err != nil {
			return nil, err
		}
		node := ""
		if len(p.FeatureNode) > 0 {
			node = p.FeatureNode[i]
		}
		bb, err := LoadBackbone(backend, path, pre, node)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("parameter backbone: %w; %s", err, ExportHint)
			}
			return nil, err
		}
		out = append(out, bb)
	}
	return out, nil
}

// featureSet is what the features task hands to the others.
type featureSet struct {
	Classes []string
	Items   []Item
	Feats   [][]float32
	Bad     []string
}

func featurePath(env tasks.Env, name string) string {
	return filepath.Join(env.JobDir(), "features", name+".gob")
}

func writeFeatureSet(path string, fs *featureSet) error {
	return tasks.WriteFileAtomic(path, func(w io.Writer) error { return gob.NewEncoder(w).Encode(fs) })
}

func readFeatureSet(path string) (*featureSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var fs featureSet
	if err := gob.NewDecoder(f).Decode(&fs); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &fs, nil
}

// dropBad keeps the items whose features exist.
func dropBad(items []Item, feats [][]float32) ([]Item, [][]float32) {
	var it []Item
	var fs [][]float32
	for i := range items {
		if feats[i] != nil {
			it = append(it, items[i])
			fs = append(fs, feats[i])
		}
	}
	return it, fs
}

func featuresTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	trainDir, testDir := p.dirs(env)
	ds, bad, err := ListTrain(trainDir, p.SkipBad)
	if err != nil {
		return err
	}
	for _, b := range bad {
		env.Logf("skipping %v", b)
	}
	bbs, err := loadBackbones(env, p)
	if err != nil {
		return err
	}
	ex := &Extractor{Backbones: bbs, CacheDir: p.cacheDir(env), BatchSize: p.ExtractBatch, SkipBad: p.SkipBad,
		Logf: env.Logf, Progress: env.Progress, MarkDone: env.MarkDone}
	feats, bad2, err := ex.Run(ctx, ds.Items)
	if err != nil {
		return err
	}
	items, feats := dropBad(ds.Items, feats)
	var badNames []string
	for _, b := range append(bad, bad2...) {
		badNames = append(badNames, b.Error())
	}
	if err := writeFeatureSet(featurePath(env, "train"), &featureSet{ds.Classes, items, feats, badNames}); err != nil {
		return err
	}
	n := len(items)
	if testDir != "" {
		test, err := ListTest(testDir)
		if err != nil {
			return err
		}
		tf, tbad, err := ex.Run(ctx, test)
		if err != nil {
			return err
		}
		var names []string
		for _, b := range tbad {
			names = append(names, b.Error())
		}
		// Bad test images stay (without features): the submission still
		// needs a row for each id.
		if err := writeFeatureSet(featurePath(env, "test"), &featureSet{ds.Classes, test, tf, names}); err != nil {
			return err
		}
		n += len(test) - len(tbad)
	}
	env.Logf("%d images (%d computed, the rest cached), %d bad, dim %d", n, ex.Computed, len(badNames), len(feats[0]))
	return nil
}
