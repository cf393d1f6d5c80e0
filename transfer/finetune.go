package transfer

import (
	"context"

	"encoding/json"
	"errors"
	"fmt"
	"github.com/gomlx/compute"
	"image"
	"math/rand/v2"
	"path/filepath"

	. "github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	"github.com/gomlx/onnx-gomlx/onnx"

	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/tasks"
)

// Fine-tuning trains the last N weighted layers of the backbone together
// with the head, from the head trained on cached features, at a lower
// learning rate and on augmented images (random flips and crops).

// layerOps are the ONNX ops whose initializers count as a layer's weights.
var layerOps = map[string]bool{"Conv": true, "ConvTranspose": true, "BatchNormalization": true, "Gemm": true, "MatMul": true}

// tuneVars returns the store names (onnx-gomlx's safe names) of the
// initializers of the last n weighted layers at or before the cut.
func (b *Backbone) tuneVars(n int) (map[string]bool, error) {
	last := -1
	for i, nd := range b.nodes {
		for _, o := range nd.Output {
			if o == b.cut.Features {
				last = i
			}
		}
	}
	if last < 0 {
		return nil, fmt.Errorf("backbone %s: cut %q not found among the nodes", b.Path, b.cut.Features)
	}
	isVar := map[string]bool{}
	for v := range b.store.IterVariables() {
		if v.Scope() == "/"+onnx.ModelScope {
			isVar[v.Name()] = true
		}
	}
	out := map[string]bool{}
	tuned := map[int]bool{}
	layers := 0
	for i := last; i >= 0 && layers < n; i-- {
		nd := b.nodes[i]
		if !layerOps[nd.Op] {
			continue
		}
		found := false
		for _, in := range nd.Inputs {
			if name := safeVarName(in); isVar[name] {
				out[name], found = true, true
			}
		}
		if found {
			layers++
			tuned[i] = true
		}
	}
	if layers < n {
		return nil, fmt.Errorf("parameter finetune_layers: backbone %s has %d weighted layers before the cut, asked for %d", b.Name(), layers, n)
	}
	// An initializer the exporter shares with a frozen layer (torch.onnx
	// deduplicates equal tensors: the all-zero folded biases of a randomly
	// initialized network are one) stays frozen: tuning it would change
	// that layer too, and send gradients through the whole network.
	for i, nd := range b.nodes {
		if tuned[i] {
			continue
		}
		for _, in := range nd.Inputs {
			delete(out, safeVarName(in))
		}
	}
	return out, nil
}

// safeVarName is onnx-gomlx's variable naming (scope separators replaced).
func safeVarName(s string) string {
	out := []rune(s)
	for i, r := range out {
		if r == '/' {
			out[i] = '|'
		}
	}
	return string(out)
}

// augmented decodes an image with a random crop (80–100% of the side) and
// a random horizontal flip, then preprocesses it.
func (p Preprocess) augmented(path string, rng *rand.Rand) ([]float32, error) {
	img, err := decodeImage(path)
	if err != nil {
		return nil, err
	}
	rg := toRGBA(img)
	b := rg.Bounds()
	f := 0.8 + 0.2*rng.Float64()
	w, h := max(1, int(float64(b.Dx())*f)), max(1, int(float64(b.Dy())*f))
	x0, y0 := b.Min.X+rng.IntN(b.Dx()-w+1), b.Min.Y+rng.IntN(b.Dy()-h+1)
	sub := rg.SubImage(image.Rect(x0, y0, x0+w, y0+h))
	r := p.resized(sub)
	if rng.IntN(2) == 1 {
		s := p.Size
		for y := range s {
			for x := range s / 2 {
				a, c := r.RGBAAt(x, y), r.RGBAAt(s-1-x, y)
				r.SetRGBA(x, y, c)
				r.SetRGBA(s-1-x, y, a)
			}
		}
	}
	return p.tensorHWC(r), nil
}

func ftCkDir(env tasks.Env) string { return filepath.Join(env.JobDir(), "finetune", "checkpoints") }

// headDir is where the final head (and, fine-tuned, backbone) weights are.
func headDir(env tasks.Env, p *Params) string {
	if p.scratch() {
		return filepath.Join(scratchCkDir(env), "best")
	}
	if p.FinetuneLayers > 0 {
		return filepath.Join(ftCkDir(env), "best")
	}
	return bestDir(env)
}

// featureNet is a CNN cut at its pooled features: an ONNX Backbone or the
// from-scratch CNN.
type featureNet interface {
	featuresGraph(scope *model.Scope, x *Node) *Node
	mapGraph(scope *model.Scope, x *Node) (*Node, *Node)
	preprocess() Preprocess
}

func (b *Backbone) preprocess() Preprocess { return b.Pre }

func finetuneTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decode(raw)
	if err != nil {
		return err
	}
	fs, err := readFeatureSet(featurePath(env, "train"))
	if err != nil {
		return fmt.Errorf("features of the training set: %w", err)
	}
	bbs, err := loadBackbones(env, p)
	if err != nil {
		return err
	}
	bb := bbs[0]
	tune, err := bb.tuneVars(p.FinetuneLayers)
	if err != nil {
		return err
	}
	st, err := nn.NewSeededStore(p.Seed)
	if err != nil {
		return err
	}
	if err := bb.m.VariablesToScope(st.RootScope()); err != nil {
		return err
	}
	h := Head{Dim: len(fs.Feats[0]), Classes: len(fs.Classes), Dropout: p.Dropout}
	h.vars(st.RootScope())
	h.norm(st.RootScope())
	if err := tasks.LoadWeights(st, bestDir(env)); err != nil {
		return fmt.Errorf("head trained on features: %w", err)
	}
	nTune := 0
	for v := range st.IterVariables() {
		if v.Scope() == "/"+onnx.ModelScope {
			v.SetTrainable(tune[v.Name()])
			if tune[v.Name()] {
				nTune++
			}
		}
	}
	env.Logf("fine-tuning %d backbone tensors of the last %d layers and the head, learning rate %g", nTune, p.FinetuneLayers, p.FinetuneLR)
	it := &imageTrainer{net: bb, head: h, store: st, ckDir: ftCkDir(env), epochs: p.FinetuneEpochs,
		lr: []float64{p.FinetuneLR}, label: "fine-tune epoch"}
	return it.run(ctx, env, p, fs.Classes, fs.Items)
}

// imageTrainer trains a featureNet and a head end to end on augmented
// images, then writes the test set's features with the best weights
// (features/test_finetuned.gob) for the submit task.
type imageTrainer struct {
	net    featureNet
	head   Head
	store  *model.Store
	ckDir  string
	epochs int
	lr     []float64
	label  string
}

func (it *imageTrainer) run(ctx context.Context, env tasks.Env, p *Params, classes []string, items []Item) error {
	backend, err := env.Backend()
	if err != nil {
		return err
	}
	h, st, pre := it.head, it.store, it.net.preprocess()
	ck, err := tasks.OpenCheckpoints(env, st, it.ckDir, 2)
	if err != nil {
		return err
	}
	modelFn := func(scope *model.Scope, x *Node) *Node { return h.Logits(scope, it.net.featuresGraph(scope, x)) }
	trainer := train.NewTrainer(backend, st, modelFn, h.loss, optimizer.Adam().LearningRate(it.lr[0]).Done(), nil, nil)
	valIdx, trnIdx := SplitVal(len(items), p.ValFraction, p.Seed)
	valIdx = valIdx[:min(len(valIdx), 200)]
	valItems := make([]Item, len(valIdx))
	for k, i := range valIdx {
		valItems[k] = items[i]
	}
	ex := &Extractor{}
	steps := p.StepsPerEpoch
	if steps == 0 {
		steps = (len(trnIdx) + p.BatchSize - 1) / p.BatchSize
	}
	loop := &tasks.Loop{
		Env: env, Store: st, Trainer: trainer, Checkpoints: ck,
		Epochs: it.epochs, StepsPerEpoch: steps, Progress: it.label,
		LearningRates: it.lr, Patience: p.Patience,
		Batch: func(_ context.Context, step int) (train.Batch, error) {
			epoch, i := step/steps, step%steps
			perm := rand.New(rand.NewPCG(uint64(p.Seed), uint64(epoch))).Perm(len(trnIdx))
			idx := make([]int, min(p.BatchSize, len(trnIdx)))
			for k := range idx {
				idx[k] = trnIdx[perm[(i*p.BatchSize+k)%len(perm)]]
			}
			xs := make([][]float32, len(idx))
			errs := make([]error, len(idx))
			ex.parallel(len(idx), func(k int) {
				rng := rand.New(rand.NewPCG(uint64(p.Seed)^0xa06, uint64(step)*1e6+uint64(k)))
				xs[k], errs[k] = pre.augmented(items[idx[k]].Path, rng)
			})
			if err := errors.Join(errs...); err != nil {
				return train.Batch{}, err
			}
			return train.Batch{Inputs: []*tensors.Tensor{batchTensor(pre.Size, xs)},
				Labels: []*tensors.Tensor{labelTensor(h, items, idx)}}, nil
		},
		Validate: func(ctx context.Context) (map[string]float64, error) {
			if len(valIdx) == 0 {
				return nil, nil
			}
			probs, err := netProbs(ctx, backend, st, it.net, h, valItems, p.ExtractBatch)
			if err != nil {
				return nil, err
			}
			s := Score(probs, labelsOf(items, valIdx), p.Clip)
			return map[string]float64{"val_loss": s.LogLoss, "val_loss_clipped": s.LogLossClipped, "val_acc": s.Acc}, nil
		},
	}
	if _, err := loop.Run(ctx); err != nil {
		return err
	}
	test, err := readFeatureSet(featurePath(env, "test"))
	if err != nil {
		return nil // no test set
	}
	if err := tasks.LoadWeights(st, loop.BestDir()); err != nil {
		return err
	}
	// The test features change with the network: recompute them.
	test.Feats, err = netFeatures(ctx, backend, st, it.net, test.Items, p.ExtractBatch)
	if err != nil {
		return err
	}
	return writeFeatureSet(featurePath(env, "test_finetuned"), test)
}

// netFeatures computes the pooled features of items (nil for an image that
// does not decode: the test set keeps its rows).
func netFeatures(ctx context.Context, backend compute.Backend, st *model.Store, net featureNet, items []Item, batch int) (out [][]float32, err error) {
	defer recoverErr(&err, "features")
	exec, err := model.NewExec(backend, st, net.featuresGraph)
	if err != nil {
		return nil, err
	}
	return batched(ctx, exec, net.preprocess(), items, batch)
}

// netProbs computes class probabilities of items with net and head.
func netProbs(ctx context.Context, backend compute.Backend, st *model.Store, net featureNet, h Head, items []Item, batch int) (out [][]float64, err error) {
	defer recoverErr(&err, "predict")
	exec, err := model.NewExec(backend, st, func(scope *model.Scope, x *Node) *Node {
		return h.probs(scope, net.featuresGraph(scope, x))
	})
	if err != nil {
		return nil, err
	}
	rows, err := batched(ctx, exec, net.preprocess(), items, batch)
	if err != nil {
		return nil, err
	}
	out = make([][]float64, len(rows))
	for i, r := range rows {
		if r == nil {
			continue
		}
		out[i] = make([]float64, len(r))
		for k, v := range r {
			out[i][k] = float64(v)
		}
	}
	return out, nil
}

func batched(ctx context.Context, exec *model.Exec, pre Preprocess, items []Item, batch int) ([][]float32, error) {
	ex := &Extractor{}
	out := make([][]float32, len(items))
	for s := 0; s < len(items); s += batch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		part := items[s:min(s+batch, len(items))]
		xs := make([][]float32, len(part))
		ex.parallel(len(part), func(k int) { xs[k], _ = pre.loadInput(part[k].Path) })
		var ok []int
		var in [][]float32
		for k, x := range xs {
			if x != nil {
				ok, in = append(ok, s+k), append(in, x)
			}
		}
		if len(in) == 0 {
			continue
		}
		t, err := exec.Call1(batchTensor(pre.Size, in))
		if err != nil {
			return nil, err
		}
		flat := tensors.MustCopyFlatData[float32](t)
		d := len(flat) / len(in)
		for k, i := range ok {
			out[i] = flat[k*d : (k+1)*d : (k+1)*d]
		}
	}
	return out, nil
}
