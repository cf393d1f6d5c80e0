package ocr

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/train"

	"github.com/dl4img/dl4img/ocr/expr"
	"github.com/dl4img/dl4img/ocr/reader"
	"github.com/dl4img/dl4img/tasks"
)

// setsFile is what the data task hands to the others (data/sets.json).
type setsFile struct {
	// Train is nil when training streams generated images.
	Train []Sample `json:"train"`
	Val   []Sample `json:"val"`
	// Test is in submission order; a sample with an empty Path stands for a
	// skipped bad image, predicted as "not read" to keep one line per image.
	Test        []Sample `json:"test"`
	TestLabeled bool     `json:"test_labeled"`
	Skipped     int      `json:"skipped_bad"`
}

func dataDir(env tasks.Env) string   { return filepath.Join(env.JobDir(), "data") }
func setsPath(env tasks.Env) string  { return filepath.Join(dataDir(env), "sets.json") }
func ckDir(env tasks.Env) string     { return filepath.Join(env.JobDir(), "train", "checkpoints") }
func bestDir(env tasks.Env) string   { return filepath.Join(ckDir(env), "best") }
func predsPath(env tasks.Env) string { return predsFile(env.JobDir()) }

// predsFile is predict's predictions.json in a job directory.
func predsFile(jobDir string) string { return filepath.Join(jobDir, "predict", "predictions.json") }

func readSets(env tasks.Env) (*setsFile, error) {
	data, err := os.ReadFile(setsPath(env))
	if err != nil {
		return nil, fmt.Errorf("data sets (run the data task first): %w", err)
	}
	var s setsFile
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", setsPath(env), err)
	}
	return &s, nil
}

// loadOptions is what a valid labeled sample is for p's model.
func (p *Params) loadOptions() LoadOptions {
	return LoadOptions{Charset: p.Charset, MaxLen: p.Length, Width: p.Width, Height: p.Height,
		CheckValues: p.kind == KindArithCTC}
}

// loadDir loads and validates a dataset folder. Bad lines fail with the
// first ones named, or with skip_bad are dropped and counted.
func (p *Params) loadDir(ctx context.Context, dir string, test bool) (*Dataset, error) {
	var d *Dataset
	var err error
	if test {
		d, err = LoadTestDir(ctx, dir, p.loadOptions())
	} else {
		d, err = LoadLabeled(ctx, dir, p.loadOptions())
	}
	if err != nil {
		return nil, err
	}
	if p.kind == KindCaptchaCNN && d.Labeled {
		// The CNN has exactly Length heads.
		kept := d.Samples[:0]
		for _, s := range d.Samples {
			if n := utf8.RuneCountInString(s.Text); n != p.Length {
				d.Bad = append(d.Bad, &LineError{File: LabelsFile, Line: s.Line,
					Err: fmt.Errorf("label %q has %d characters; captcha-cnn reads exactly length=%d", s.Text, n, p.Length)})
				continue
			}
			kept = append(kept, s)
		}
		d.Samples = kept
		sort.SliceStable(d.Bad, func(i, j int) bool { return d.Bad[i].Line < d.Bad[j].Line })
	}
	if len(d.Bad) > 0 && !p.SkipBad {
		return nil, badLinesError(d)
	}
	return d, nil
}

// badLinesError is one line starting with the first rejection, e.g.
// "labels.txt:3: label ...: unknown characters ...".
func badLinesError(d *Dataset) error {
	var more []string
	for _, e := range d.Bad[1:min(len(d.Bad), 4)] {
		if e.Line > 0 {
			more = append(more, fmt.Sprintf("%s:%d", e.File, e.Line))
		} else {
			more = append(more, e.File)
		}
	}
	msg := fmt.Sprintf("%v (in %s", d.Bad[0], d.Dir)
	if n := len(d.Bad) - 1; n > 0 {
		msg += fmt.Sprintf("; %d more bad: %s", n, strings.Join(more, ", "))
		if n > len(more) {
			msg += ", ..."
		}
	}
	return fmt.Errorf("%s; --set skip_bad=true skips them)", msg)
}

// generatedSamples lists samples 0..n-1 of a GenerateDataset folder.
func generatedSamples(g *Generator, dir string, n int) []Sample {
	out := make([]Sample, n)
	for i := range out {
		name := strconv.Itoa(i) + ".png"
		text := g.Label(int64(i))
		v, _ := expr.Prelim.Value(text)
		if g.Config().Mode != ModeArith {
			v = ""
		}
		out[i] = Sample{Line: i + 1, Name: name, Path: filepath.Join(dir, name), Text: text, Value: v}
	}
	return out
}

// generateSet writes a generated folder (resuming an interrupted one).
func generateSet(ctx context.Context, env tasks.Env, p *Params, name string, seed int64, n int) ([]Sample, error) {
	g, err := NewGenerator(p.GenConfig(seed))
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(dataDir(env), name)
	if !CacheComplete(dir, g, n) {
		env.Logf("generating %d %s images in %s", n, name, dir)
		err := GenerateDataset(ctx, g, dir, n, func(done, total int) {
			if done%64 == 0 || done == total {
				env.Progress("generate "+name, done, total)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	return generatedSamples(g, dir, n), nil
}

// dataTask prepares the training, validation and test sets: it validates
// train_dir/test_dir up front (failing on bad lines unless skip_bad) or
// generates the cache, validation and test folders into the job dir.
func dataTask(ctx context.Context, env tasks.Env, raw json.RawMessage) (err error) {
	defer recoverError(&err)
	p, err := decodeTask(raw)
	if err != nil {
		return err
	}
	var s setsFile
	if p.TrainDir != "" {
		d, err := p.loadDir(ctx, p.TrainDir, false)
		if err != nil {
			return fmt.Errorf("train_dir: %w", err)
		}
		s.Skipped += len(d.Bad)
		all := append([]Sample(nil), d.Samples...)
		rand.New(rand.NewPCG(uint64(p.Seed), 0x0c7)).Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
		nVal := max(1, int(float64(len(all))*p.ValFraction))
		if len(all)-nVal < 1 {
			return fmt.Errorf("train_dir %s: %d usable samples, too few to hold out val_fraction=%g", p.TrainDir, len(all), p.ValFraction)
		}
		s.Val, s.Train = all[:nVal], all[nVal:]
		env.Logf("train_dir: %d training and %d validation samples, %d bad skipped", len(s.Train), len(s.Val), len(d.Bad))
	} else {
		if p.Data == DataCache {
			if s.Train, err = generateSet(ctx, env, p, "train", p.trainSeed(), p.TrainSize); err != nil {
				return err
			}
		}
		if s.Val, err = generateSet(ctx, env, p, "val", p.valSeed(), p.ValSize); err != nil {
			return err
		}
	}
	if p.TestDir != "" {
		d, err := p.loadDir(ctx, p.TestDir, true)
		if err != nil {
			return fmt.Errorf("test_dir: %w", err)
		}
		s.Skipped += len(d.Bad)
		s.Test = withPlaceholders(d)
		s.TestLabeled = d.Labeled
	} else {
		if s.Test, err = generateSet(ctx, env, p, "test", p.testSeed(), p.TestSize); err != nil {
			return err
		}
		s.TestLabeled = true
	}
	if err := tasks.WriteJSONFile(setsPath(env), &s); err != nil {
		return err
	}
	return env.Metrics(0, 0, map[string]float64{"skipped_bad": float64(s.Skipped),
		"train_samples": float64(len(s.Train)), "val_samples": float64(len(s.Val)), "test_samples": float64(len(s.Test))})
}

// withPlaceholders puts skipped bad test images back in submission order
// as empty samples, so result.txt keeps one line per test image.
func withPlaceholders(d *Dataset) []Sample {
	type keyed struct {
		key int
		s   Sample
	}
	var all []keyed
	key := func(s Sample) int {
		if d.Labeled {
			return s.Line
		}
		n, _ := strconv.Atoi(strings.TrimSuffix(s.Name, ".png"))
		return n
	}
	for _, s := range d.Samples {
		all = append(all, keyed{key(s), s})
	}
	for _, e := range d.Bad {
		s := Sample{Line: e.Line, Name: e.File}
		if d.Labeled {
			s.Name = fmt.Sprintf("%s:%d", e.File, e.Line)
			if d.Format == FormatIndexed {
				s.Name = strconv.Itoa(e.Line-1) + ".png"
			}
		}
		all = append(all, keyed{key(s), s})
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].key < all[j].key })
	out := make([]Sample, len(all))
	for i, k := range all {
		out[i] = k.s
	}
	return out
}

// imageSource yields model inputs: files, or a generator's samples by index.
type imageSource struct {
	gen     *Generator
	samples []Sample
	w, h    int
}

// images is the reader.Images of the set: images start … start+len(texts)-1.
func (s *imageSource) images(ctx context.Context, start int, x []float32, texts []string) error {
	idx := make([]int64, len(texts))
	for i := range idx {
		idx[i] = int64(start + i)
	}
	return s.load(ctx, idx, x, texts)
}

// load fills x (len(idx)·h·w·3) and texts with the images at idx. Samples
// without a path (skipped bad images) are left zero.
func (s *imageSource) load(ctx context.Context, idx []int64, x []float32, texts []string) error {
	n := s.w * s.h * 3
	return parallelFor(ctx, len(idx), func(i int) error {
		dst := x[i*n : (i+1)*n]
		var img image.Image
		if s.samples == nil {
			var text string
			img, text = s.gen.Sample(idx[i])
			texts[i] = text
		} else {
			sm := s.samples[idx[i]]
			texts[i] = sm.Text
			if sm.Path == "" {
				clear(dst)
				return nil
			}
			var err error
			if img, err = LoadImage(sm.Path); err != nil {
				return fmt.Errorf("%s: %w", sm.Path, err)
			}
		}
		if b := img.Bounds(); b.Dx() != s.w || b.Dy() != s.h {
			return fmt.Errorf("image %d is %dx%d, want %dx%d", idx[i], b.Dx(), b.Dy(), s.w, s.h)
		}
		return ImageToFloat32(img, dst)
	})
}

// trainFeed returns the Loop's Batch function: a deterministic function of
// the step. Streaming draws samples step·B … step·B+B-1 of the generator
// (fresh images every step); a finite set is read in a new seeded
// permutation on each pass.
func trainFeed(p *Params, src *imageSource) func(ctx context.Context, step int) (train.Batch, error) {
	b := p.BatchSize
	hw3 := p.Width * p.Height * 3
	cs := reader.NewCharset(p.Charset)
	n := int64(len(src.samples))
	permPass := int64(-1)
	var perm []int
	return func(ctx context.Context, step int) (train.Batch, error) {
		idx := make([]int64, b)
		for k := range idx {
			pos := int64(step)*int64(b) + int64(k)
			if src.samples == nil {
				idx[k] = pos
				continue
			}
			if pass := pos / n; pass != permPass {
				perm = rand.New(rand.NewPCG(uint64(p.Seed), uint64(pass)+1)).Perm(int(n))
				permPass = pass
			}
			idx[k] = int64(perm[pos%n])
		}
		x := make([]float32, b*hw3)
		texts := make([]string, b)
		if err := src.load(ctx, idx, x, texts); err != nil {
			return train.Batch{}, err
		}
		labels, lens, err := cs.Labels(texts, p.Length)
		if err != nil {
			return train.Batch{}, err
		}
		xt := tensors.FromFlatDataAndDimensions(x, b, p.Height, p.Width, 3)
		return train.Batch{Inputs: []*tensors.Tensor{xt}, Labels: []*tensors.Tensor{labels, lens}}, nil
	}
}
