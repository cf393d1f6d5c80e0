package ocr

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"

	"github.com/dl4img/dl4img/ocr/reader"
	"github.com/dl4img/dl4img/tasks/taskstest"
)

// The checkpoints under testdata/checkpoint-before were written by the
// code before the readers were unified (DL4IMG_WRITE_FIXTURES=1 rewrites
// them with the current code): a job trained then must still predict the
// same after, so its variables keep their names and the network its wiring.

// fixtureParams is a tiny job of kind.
func fixtureParams(kind string) *Params {
	p := bookDefaults(kind)
	p.Width, p.Height, p.Charset, p.Length = 48, 16, "0123456789", 2
	p.Filters, p.Dense, p.RNNHidden, p.BNMomentum, p.BatchSize = 2, 4, 3, 0.9, 4
	return p
}

// fixtureImages writes n noise images of p's size with labels.
func fixtureImages(t *testing.T, p *Params, n int) []Sample {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(7, uint64(n)))
	var out []Sample
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, p.Width, p.Height))
		for y := range p.Height {
			for x := range p.Width {
				img.Set(x, y, color.RGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255})
			}
		}
		path := filepath.Join(dir, fmt.Sprintf("%d.png", i))
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		f.Close()
		out = append(out, Sample{Name: filepath.Base(path), Path: path, Text: []string{"12", "7", "90", "33", "5"}[i%5]})
	}
	return out
}

// writeCheckpointFixture trains p's network a few steps on noise and saves
// a checkpoint as the train task does.
func writeCheckpointFixture(t *testing.T, p *Params, dir string) {
	backend, err := taskstest.New(t, "train").Backend()
	if err != nil {
		t.Fatal(err)
	}
	st, err := newTrainStore(p)
	if err != nil {
		t.Fatal(err)
	}
	net := p.Net()
	feed := trainFeed(p, &imageSource{samples: fixtureImages(t, p, 8), w: p.Width, h: p.Height})
	taskstest.TrainCheckpoint(t, train.NewTrainer(backend, st, net.Logits, reader.Loss(net), optimizer.Adam().LearningRate(0.01).Done(), nil, nil),
		dir, 3, func(step int) (train.Batch, error) { return feed(context.Background(), step) })
}

func TestCheckpointFromBeforeLoads(t *testing.T) {
	for _, kind := range []string{KindCaptchaCNN, KindCaptchaCTC} {
		t.Run(kind, func(t *testing.T) {
			p := fixtureParams(kind)
			fixture := filepath.Join("testdata", "checkpoint-before", kind)
			if taskstest.WriteFixtures() {
				writeCheckpointFixture(t, p, filepath.Join(fixture, "checkpoints"))
			}
			env := taskstest.New(t, "predict")
			if err := os.CopyFS(ckDir(env), os.DirFS(filepath.Join(fixture, "checkpoints"))); err != nil {
				t.Fatal(err)
			}
			pred, step, err := trainedReader(env, p)
			if err != nil {
				t.Fatal(err)
			}
			samples := fixtureImages(t, p, 5)
			src := &imageSource{samples: samples, w: p.Width, h: p.Height}
			rd, err := pred.Read(context.Background(), len(samples), src.images, nil)
			if err != nil {
				t.Fatal(err)
			}
			var want []reader.Reading
			taskstest.JSONFixture(t, filepath.Join(fixture, "readings.json"), rd, &want)
			if step != 3 || len(rd) != len(want) {
				t.Fatalf("step %d, %d readings; want step 3, %d readings", step, len(rd), len(want))
			}
			for i := range want {
				if rd[i].Text != want[i].Text || !closeTo(rd[i].Confidence, want[i].Confidence) || !closeTo(rd[i].Loss, want[i].Loss) {
					t.Errorf("image %d: read %+v, the checkpoint's network read %+v", i, rd[i], want[i])
				}
			}
		})
	}
}

func closeTo(a, b float64) bool { return math.Abs(a-b) <= 1e-5*max(1, math.Abs(b)) }
