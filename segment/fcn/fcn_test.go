package fcn

import (
	"image"
	"image/color"
	"math/rand/v2"
	"testing"

	"github.com/dl4img/dl4img/tasks"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/nn"
)

func backend(tb testing.TB) compute.Backend {
	tb.Helper()
	b, _, err := tasks.NewBackend("go")
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// toy draws a blue image with a few red rectangles; the mask is the red.
func toy(rng *rand.Rand, side int) (*image.NRGBA, *image.Gray) {
	img := image.NewNRGBA(image.Rect(0, 0, side, side))
	mk := image.NewGray(image.Rect(0, 0, side, side))
	for y := range side {
		for x := range side {
			img.SetNRGBA(x, y, color.NRGBA{uint8(60 + rng.IntN(40)), 80, 200, 255})
		}
	}
	for range 1 + rng.IntN(2) {
		x0, y0 := rng.IntN(side-4), rng.IntN(side-4)
		w, h := 3+rng.IntN(side/2), 3+rng.IntN(side/2)
		for y := y0; y < min(y0+h, side); y++ {
			for x := x0; x < min(x0+w, side); x++ {
				img.SetNRGBA(x, y, color.NRGBA{uint8(180 + rng.IntN(60)), 60, 90, 255})
				mk.Pix[y*side+x] = 255
			}
		}
	}
	return img, mk
}

func toyBatch(rng *rand.Rand, n, side int) ([]*image.NRGBA, []*image.Gray) {
	imgs, masks := make([]*image.NRGBA, n), make([]*image.Gray, n)
	for i := range n {
		imgs[i], masks[i] = toy(rng, side)
	}
	return imgs, masks
}

func newTrainer(tb testing.TB, cfg Config, seed int64) (*train.Trainer, *Predictor) {
	tb.Helper()
	be := backend(tb)
	st, err := nn.NewSeededStore(seed)
	if err != nil {
		tb.Fatal(err)
	}
	lf, err := LossFn(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tr := train.NewTrainer(be, st, Logits(cfg), lf, optimizer.Adam().LearningRate(0.01).Done(), nil, nil)
	pr, err := NewPredictor(be, st, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return tr, pr
}

func step(tb testing.TB, tr *train.Trainer, imgs []*image.NRGBA, masks []*image.Gray) float32 {
	tb.Helper()
	x, err := Input(imgs)
	if err != nil {
		tb.Fatal(err)
	}
	y, err := Labels(masks)
	if err != nil {
		tb.Fatal(err)
	}
	ms, err := tr.TrainStep(train.Batch{Inputs: []*tensors.Tensor{x}, Labels: []*tensors.Tensor{y}})
	if err != nil {
		tb.Fatal(err)
	}
	return tensors.ToScalar[float32](ms[0])
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg Config
		ok  bool
	}{
		{DefaultConfig(), true},
		{Config{Filters: 4, Depth: 0, ConvsPerLevel: 1, Loss: "dice"}, true},
		{Config{Filters: 0, Depth: 2, ConvsPerLevel: 1, Loss: "bce"}, false},
		{Config{Filters: 4, Depth: 9, ConvsPerLevel: 1, Loss: "bce"}, false},
		{Config{Filters: 4, Depth: 2, ConvsPerLevel: 1, L2: -1, Loss: "bce"}, false},
		{Config{Filters: 4, Depth: 2, ConvsPerLevel: 1, Loss: "focal"}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%+v: Validate() = %v, want ok=%v", c.cfg, err, c.ok)
		}
	}
}

// The l2 λ of the deconvolution kernels enters the training loss.
func TestL2OnDeconvolution(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	imgs, masks := toyBatch(rng, 2, 16)
	cfg := Config{Filters: 4, Depth: 2, ConvsPerLevel: 1, Loss: "bce"}
	tr0, _ := newTrainer(t, cfg, 7)
	l0 := step(t, tr0, imgs, masks)
	cfg.L2 = 10
	tr1, _ := newTrainer(t, cfg, 7)
	l1 := step(t, tr1, imgs, masks)
	if !(l1 > l0+1e-3) {
		t.Fatalf("loss with l2=10 is %v, without %v: the penalty is missing", l1, l0)
	}
}

func TestShapesAndBadInput(t *testing.T) {
	_, pr := newTrainer(t, Config{Filters: 4, Depth: 2, ConvsPerLevel: 1, Loss: "bce"}, 1)
	rng := rand.New(rand.NewPCG(1, 3))
	imgs, _ := toyBatch(rng, 3, 16)
	probs, err := pr.Predict(imgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 3 || len(probs[0]) != 256 {
		t.Fatalf("got %d maps of %d values", len(probs), len(probs[0]))
	}
	for _, p := range probs[0] {
		if p < 0 || p > 1 {
			t.Fatalf("probability %v outside [0,1]", p)
		}
	}
	odd, _ := toyBatch(rng, 1, 18)
	if _, err := pr.Predict(odd); err == nil {
		t.Fatal("18×18 window accepted by a depth-2 network")
	}
}

// A few dozen steps learn to segment red rectangles, for each loss.
func TestLearnsToySegmentation(t *testing.T) {
	for _, lossName := range []string{"bce", "dice", "bce+dice"} {
		t.Run(lossName, func(t *testing.T) {
			cfg := Config{Filters: 4, Depth: 1, ConvsPerLevel: 1, L2: 1e-4, Loss: lossName}
			tr, pr := newTrainer(t, cfg, 3)
			rng := rand.New(rand.NewPCG(5, 6))
			for range 60 {
				imgs, masks := toyBatch(rng, 8, 16)
				step(t, tr, imgs, masks)
			}
			imgs, masks := toyBatch(rng, 8, 16)
			probs, err := pr.Predict(imgs)
			if err != nil {
				t.Fatal(err)
			}
			var tp, fp, fn float64
			for i, p := range probs {
				for j, v := range p {
					y := masks[i].Pix[j] != 0
					switch {
					case v >= 0.5 && y:
						tp++
					case v >= 0.5:
						fp++
					case y:
						fn++
					}
				}
			}
			if dice := 2 * tp / (2*tp + fp + fn); dice < 0.9 {
				t.Fatalf("dice %.3f after 60 steps, want > 0.9", dice)
			}
		})
	}
}

func benchCfg() Config {
	return Config{Filters: 8, Depth: 2, ConvsPerLevel: 2, L2: 1e-4, Loss: "bce+dice"}
}

// BenchmarkPredict64 reports prediction windows/s of the demo network
// (64² windows, batches of 8) on the Go backend.
func BenchmarkPredict64(b *testing.B) {
	_, pr := newTrainer(b, benchCfg(), 1)
	imgs, _ := toyBatch(rand.New(rand.NewPCG(1, 1)), 8, 64)
	if _, err := pr.Predict(imgs); err != nil { // compile
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := pr.Predict(imgs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(8*b.N)/b.Elapsed().Seconds(), "tiles/s")
}

// BenchmarkTrainStep64 is one demo training step (8 patches of 64²).
func BenchmarkTrainStep64(b *testing.B) {
	tr, _ := newTrainer(b, benchCfg(), 1)
	imgs, masks := toyBatch(rand.New(rand.NewPCG(1, 1)), 8, 64)
	step(b, tr, imgs, masks)
	b.ResetTimer()
	for b.Loop() {
		step(b, tr, imgs, masks)
	}
}
