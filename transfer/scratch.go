package transfer

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/checkpoint"

	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/tasks"
)

// ScratchBackbone is the backbone value that trains a small CNN from
// scratch instead of transferring: no pretrained weights at all.
const ScratchBackbone = "scratch"

// scratchNet is three conv blocks (16, 32, 64 filters, 3×3, ReLU, 2×2 max
// pooling after the first two) and a global average pool: the tiny
// fixture's architecture, randomly initialized.
type scratchNet struct{ pre Preprocess }

func (s scratchNet) preprocess() Preprocess { return s.pre }

// convs runs the conv blocks on x [batch, h, w, 3]: [batch, h/4, w/4, 64].
func (s scratchNet) convs(scope *model.Scope, x *Node) *Node {
	sc := scope.At("scratch")
	for i, filters := range []int{16, 32, 64} {
		x = nn.Conv2D(sc.At("conv%d", i+1), x, nn.Conv2DConfig{Filters: filters, Kernel: 3, Padding: nn.PadSame})
		x = nn.Relu(x)
		if i < 2 {
			x = nn.MaxPool2D(x, 2)
		}
	}
	return x
}

// mapGraph returns the pooled features [batch, 64] and the last conv map
// (what the CAM reads).
func (s scratchNet) mapGraph(scope *model.Scope, x *Node) (*Node, *Node) {
	m := s.convs(scope, x)
	return nn.GlobalAvgPool2D(m), m
}

// featuresGraph is mapGraph's pooled features.
func (s scratchNet) featuresGraph(scope *model.Scope, x *Node) *Node {
	return nn.GlobalAvgPool2D(s.convs(scope, x))
}

func scratchCkDir(env tasks.Env) string { return filepath.Join(env.JobDir(), "scratch", "checkpoints") }

func (p *Params) scratch() bool { return len(p.Backbone) == 1 && p.Backbone[0] == ScratchBackbone }

// imagesTrained reports whether the final model was trained on images (so
// the test features were recomputed in features/test_finetuned.gob).
func (p *Params) imagesTrained() bool { return p.FinetuneLayers > 0 || p.scratch() }

// scratchTask trains the small CNN and the head end to end on augmented
// images, labelled as from scratch in the log and the metrics.
func scratchTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	trainDir, testDir := p.dirs(env)
	ds, bad, err := ListTrain(trainDir, p.SkipBad)
	if err != nil {
		return err
	}
	pre, err := p.preprocess(0)
	if err != nil {
		return err
	}
	// Undecodable files are found before training (as the features task
	// does), so that batches never fail.
	items, bad2, err := checkImages(ctx, ds.Items, p.SkipBad, env.Logf)
	if err != nil {
		return err
	}
	var badNames []string
	for _, b := range append(bad, bad2...) {
		badNames = append(badNames, b.Error())
	}
	if err := writeFeatureSet(featurePath(env, "train"), &featureSet{Classes: ds.Classes, Items: items, Bad: badNames}); err != nil {
		return err
	}
	if testDir != "" {
		test, err := ListTest(testDir)
		if err != nil {
			return err
		}
		if err := writeFeatureSet(featurePath(env, "test"), &featureSet{Classes: ds.Classes, Items: test, Feats: make([][]float32, len(test))}); err != nil {
			return err
		}
	}
	env.Logf("backbone=scratch: training a small CNN FROM SCRATCH (no pretrained weights, no transfer) on %d images", len(items))
	if err := env.Metrics(0, 0, map[string]float64{"from_scratch": 1}); err != nil {
		return err
	}
	st, err := nn.NewSeededStore(p.Seed)
	if err != nil {
		return err
	}
	h := Head{Dim: 64, Classes: len(ds.Classes), Dropout: p.Dropout}
	h.vars(st.RootScope())
	h.norm(st.RootScope())
	it := &imageTrainer{net: scratchNet{pre}, head: h, store: st, ckDir: scratchCkDir(env), epochs: p.Epochs,
		lr: []float64{p.LearningRate, p.LearningRate / 10}, label: "scratch epoch"}
	return it.run(ctx, env, p, ds.Classes, items)
}

// checkImages decodes every item once, in parallel.
func checkImages(ctx context.Context, items []Item, skipBad bool, logf func(string, ...any)) ([]Item, []error, error) {
	errs := make([]error, len(items))
	(&Extractor{}).parallel(len(items), func(i int) {
		if ctx.Err() == nil {
			_, errs[i] = decodeImage(items[i].Path)
		}
	})
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var ok []Item
	var bad []error
	for i, err := range errs {
		if err == nil {
			ok = append(ok, items[i])
			continue
		}
		e := err
		if err == ErrNotImage {
			e = &BadFileError{items[i].Rel, "not an image"}
		} else {
			e = fmt.Errorf("%s: %w", items[i].Rel, err)
		}
		if !skipBad {
			return nil, nil, e
		}
		logf("skipping %v", e)
		bad = append(bad, e)
	}
	return ok, bad, nil
}

// loadScratch returns the trained scratch CNN's store (all variables).
func loadScratch(env tasks.Env) (*model.Store, error) {
	st := model.NewStore()
	if _, err := checkpoint.Build(st).Dir(filepath.Join(scratchCkDir(env), "best")).Immediate().Done(); err != nil {
		return nil, fmt.Errorf("scratch CNN: %w", err)
	}
	return st, nil
}
