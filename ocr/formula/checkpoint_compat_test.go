package formula

import (
	"context"
	"image"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/ensemble"
	"github.com/dl4img/dl4img/nn"
	"github.com/dl4img/dl4img/ocr/reader"
	"github.com/dl4img/dl4img/tasks/taskstest"
)

// The checkpoint under testdata/checkpoint-before was written by the code
// before the readers were unified (DL4IMG_WRITE_FIXTURES=1 rewrites it
// with the current code): a formula job trained then must still read the
// same after, so the reader's variables keep their names and the network
// its wiring.

func fixtureJob() *JobParams {
	p := jobDefaults().(*JobParams)
	p.StripHeight, p.StripWidth, p.Filters, p.RNNHidden, p.BatchSize = 16, 64, 2, 3, 4
	return p
}

// fixtureExamples are n examples of noise crops with labels.
func fixtureExamples(n int) []*example {
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	texts := []string{"流=4;流*2", "3+4", "(12-5)/3", "君=1;不=2;君-不"}
	var out []*example
	for i := range n {
		var crops []*image.Gray
		for range 1 + i%3 {
			c := image.NewGray(image.Rect(0, 0, 20+rng.IntN(40), 12))
			for k := range c.Pix {
				c.Pix[k] = uint8(rng.IntN(256))
			}
			crops = append(crops, c)
		}
		out = append(out, &example{Name: string(rune('a' + i)), Crops: crops, Text: texts[i%len(texts)]})
	}
	return out
}

// writeReaderFixture trains p's reader a few steps on noise strips and
// saves a checkpoint as the train task does.
func writeReaderFixture(t *testing.T, p *JobParams, dir string) {
	backend, err := taskstest.New(t, "train").Backend()
	if err != nil {
		t.Fatal(err)
	}
	st, err := nn.NewSeededStore(p.Seed)
	if err != nil {
		t.Fatal(err)
	}
	net, xs, e := p.net(), fixtureExamples(8), p.extractor()
	taskstest.TrainCheckpoint(t, train.NewTrainer(backend, st, net.Logits, reader.Loss(net), optimizer.Adam().LearningRate(0.01).Done(), nil, nil),
		dir, 3, func(step int) (train.Batch, error) { return trainBatch(p, e, xs, nil, step) })
}

func TestCheckpointFromBeforeLoads(t *testing.T) {
	p := fixtureJob()
	fixture := filepath.Join("testdata", "checkpoint-before")
	if taskstest.WriteFixtures() {
		writeReaderFixture(t, p, filepath.Join(fixture, "checkpoints"))
	}
	env := taskstest.New(t, "predict")
	if err := os.CopyFS(checkpointDir(env, p, 0), os.DirFS(filepath.Join(fixture, "checkpoints"))); err != nil {
		t.Fatal(err)
	}
	pr, err := loadMember(env, p, 0)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := pr.read(context.Background(), fixtureExamples(5), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]ensemble.Reading, len(rs))
	for i, r := range rs {
		got[i] = ensemble.Reading{Text: r.Text, Conf: r.Confidence}
	}
	var want []ensemble.Reading
	taskstest.JSONFixture(t, filepath.Join(fixture, "readings.json"), got, &want)
	if len(rs) != len(want) {
		t.Fatalf("%d readings, want %d", len(rs), len(want))
	}
	for i := range want {
		if rs[i].Text != want[i].Text || math.Abs(rs[i].Confidence-want[i].Conf) > 1e-5*max(1e-30, want[i].Conf) {
			t.Errorf("example %d: read %+v, the checkpoint's network read %+v", i, rs[i], want[i])
		}
	}
}
