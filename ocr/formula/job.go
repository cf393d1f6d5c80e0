package formula

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dl4img/dl4img/internal/imagefile"
	"github.com/dl4img/dl4img/ocr/expr"
	"github.com/dl4img/dl4img/ocr/formula/lines"
	"github.com/dl4img/dl4img/ocr/formula/synth"
	"github.com/dl4img/dl4img/tasks"
)

// KindFormula is the job kind of the final round.
const KindFormula = "formula"

// JobParams are the parameters of the formula job kind.
type JobParams struct {
	tasks.Common
	TrainSize       int     `json:"train_size" doc:"images generated for training when train_dir is not set"`
	TestSize        int     `json:"test_size" doc:"images generated (with labels, another seed) to evaluate and predict when test_dir is not set"`
	ImageMaxWidth   int     `json:"image_max_width" doc:"largest generated image width (0: the competition's 4000; smaller images generate faster)"`
	ImageMaxHeight  int     `json:"image_max_height" doc:"largest generated image height (0: the competition's 1000)"`
	StripHeight     int     `json:"strip_height" doc:"height of the joined strip the reader sees (competition: 81; multiple of 8 here)"`
	StripWidth      int     `json:"strip_width" doc:"width of the joined strip (competition: 900; multiple of 4); wider joins are shrunk to fit"`
	Filters         int     `json:"filters" doc:"channels of the first conv block (doubling per block)"`
	RNNHidden       int     `json:"rnn_hidden" doc:"GRU units per direction"`
	L2              float64 `json:"l2" doc:"l2 penalty on the conv kernels"`
	Recombine       float64 `json:"recombine" doc:"probability that a training strip takes its assignment lines from another image (augmentation)"`
	Ensemble        int     `json:"ensemble" doc:"readers trained as separate tasks (train1..N, different seeds) that vote per image"`
	Patience        int     `json:"patience" doc:"epochs without val_loss improvement before reloading the best weights and dividing the learning rate by 10 (1e-3 → 1e-4 → 1e-5), then stopping"`
	CheckpointEvery int     `json:"checkpoint_every" doc:"save a checkpoint every N steps (0: each epoch)"`
	ValMax          int     `json:"val_max" doc:"most held-out strips scored after each epoch"`
	// Member is set by the planner for each ensemble member's train task.
	Member int `json:"member" doc:"internal: ensemble member index of a train task (set by the planner)"`
}

func jobDefaults() any {
	return &JobParams{
		Common: tasks.Common{Epochs: 60, StepsPerEpoch: 500, BatchSize: 32, LearningRate: 1e-3,
			ValFraction: 0.05, Seed: 1},
		TrainSize: 20000, TestSize: 1000,
		StripHeight: 80, StripWidth: 900, Filters: 32, RNNHidden: 128, L2: 1e-5,
		Recombine: 0.3, Ensemble: 1, Patience: 3, ValMax: 500,
	}
}

// Validate checks the parameters.
func (p *JobParams) Validate() error {
	if err := p.Common.Validate(); err != nil {
		return err
	}
	switch {
	case p.TrainDir == "" && p.TrainSize < 10:
		return errors.New("parameter train_size: must be >= 10 (or set train_dir)")
	case p.TestDir == "" && p.TestSize < 1:
		return errors.New("parameter test_size: must be >= 1 (or set test_dir)")
	case p.Epochs < 1 || p.StepsPerEpoch < 1:
		return errors.New("parameters epochs and steps_per_epoch: must be >= 1")
	case p.BatchSize < 1:
		return errors.New("parameter batch_size: must be >= 1")
	case p.Recombine < 0 || p.Recombine > 1:
		return errors.New("parameter recombine: must be in [0, 1]")
	case p.Ensemble < 1 || p.Ensemble > 15:
		return errors.New("parameter ensemble: must be in 1..15")
	case p.Member < 0 || p.Member >= p.Ensemble:
		return errors.New("parameter member: must be in 0..ensemble-1")
	case p.ImageMaxWidth != 0 && p.ImageMaxWidth < 200 || p.ImageMaxHeight != 0 && p.ImageMaxHeight < 100:
		return errors.New("parameters image_max_width/image_max_height: must be 0 or >= 200/100")
	case p.ValMax < 1:
		return errors.New("parameter val_max: must be >= 1")
	case p.Patience < 0 || p.CheckpointEvery < 0:
		return errors.New("parameters patience and checkpoint_every: must be >= 0")
	}
	if err := p.checkStrip(); err != nil {
		return fmt.Errorf("parameters strip_height/strip_width/filters/rnn_hidden/l2: %w", err)
	}
	return nil
}

// extractor is the line extractor with the strip shaped for the reader.
func (p *JobParams) extractor() *lines.Extractor {
	e := lines.NewExtractor()
	e.StripHeight, e.StripMaxWidth = p.StripHeight, p.StripWidth
	e.StripMargin = max(1, p.StripHeight/20)
	e.StripGap = max(2, p.StripHeight/7)
	e.PadToWidth = true
	return e
}

// trainTaskName names ensemble member m's train task.
func trainTaskName(p *JobParams, m int) string {
	if p.Ensemble == 1 {
		return "train"
	}
	return fmt.Sprintf("train%d", m+1)
}

// Register adds the formula job kind and its task kinds to r.
func Register(r *tasks.Registry) {
	r.RegisterJob(tasks.JobKind{
		Name:      KindFormula,
		Doc:       "final-round formula images: line extraction → joined strip → CRNN + CTC reader (optionally an ensemble voting per image) → result.txt with the exact values",
		NewParams: jobDefaults,
		Headline:  "val_seq_acc",
		Presets: map[string]map[string]any{
			// A few minutes on 2 CPU cores: small images, strips and net,
			// 160 steps. It runs every stage; the reader stays far from
			// reading whole formulas (that takes thousands of steps).
			"demo": {"train_size": 300, "test_size": 30, "image_max_width": 1200, "image_max_height": 500,
				"strip_height": 32, "strip_width": 320, "filters": 8, "rnn_hidden": 32,
				"epochs": 4, "steps_per_epoch": 40, "batch_size": 16, "learning_rate": 0.003,
				"val_fraction": 0.1, "val_max": 30, "patience": 2},
		},
		Plan: func(params any) ([]tasks.TaskSpec, error) {
			p := params.(*JobParams)
			specs := []tasks.TaskSpec{{Name: "data", Kind: "formula.data"}}
			var trains []string
			for m := range p.Ensemble {
				mp := *p
				mp.Member = m
				name := trainTaskName(p, m)
				trains = append(trains, name)
				specs = append(specs, tasks.TaskSpec{Name: name, Kind: "formula.train", Deps: []string{"data"}, Params: &mp})
			}
			specs = append(specs,
				tasks.TaskSpec{Name: "evaluate", Kind: "formula.evaluate", Deps: trains},
				tasks.TaskSpec{Name: "predict", Kind: "formula.predict", Deps: trains})
			return specs, nil
		},
	})
	r.RegisterTask("formula.data", dataTask)
	r.RegisterTask("formula.train", trainTask)
	r.RegisterTask("formula.evaluate", evaluateTask)
	r.RegisterTask("formula.predict", predictTask)
}

func init() { Register(tasks.Default) }

func decodeParams(raw json.RawMessage) (*JobParams, error) {
	p := jobDefaults().(*JobParams)
	if err := tasks.Decode(raw, p); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// Splits of the data task.
const (
	splitTrain = "train"
	splitTest  = "test"
)

func linesDir(env tasks.Env, split string) string {
	return filepath.Join(env.JobDir(), "lines", split)
}

func manifestPath(env tasks.Env, split string) string {
	return filepath.Join(env.JobDir(), "lines", split+".tsv")
}

// example is one image's extracted lines and, when known, its label.
type example struct {
	Name  string
	Crops []*image.Gray // scaled to the strip's inner height
	Text  string        // joined label text; "" when unlabeled
	Value string        // label value as in labels.txt; "" when unknown
}

// aligned tells whether the crops match the label's lines one to one, which
// the recombination needs.
func (x *example) aligned() bool {
	return x.Text != "" && len(x.Crops) == strings.Count(x.Text, ";")+1
}

// dataTask generates (or takes) the images, extracts every one into line
// crops (resumable per image) and writes a manifest per split.
func dataTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	p, err := decodeParams(raw)
	if err != nil {
		return err
	}
	done, err := env.DoneItems()
	if err != nil {
		return err
	}
	for _, split := range []string{splitTrain, splitTest} {
		dir, given := p.TrainDir, p.TrainDir != ""
		n, seed := p.TrainSize, uint64(p.Seed)
		if split == splitTest {
			dir, given, n, seed = p.TestDir, p.TestDir != "", p.TestSize, uint64(p.Seed)+0x7e57
		}
		if !given {
			dir = filepath.Join(env.JobDir(), "images", split)
			if !done["generated/"+split] {
				// Only this job reads these files: the fast encoder.
				cfg := synth.Config{Seed: seed, MaxWidth: p.ImageMaxWidth, MaxHeight: p.ImageMaxHeight, FastPNG: true}
				if cfg.MaxWidth > 0 {
					cfg.MinWidth = min(800, cfg.MaxWidth)
				}
				if cfg.MaxHeight > 0 {
					cfg.MinHeight = min(400, cfg.MaxHeight)
				}
				err := synth.GenerateDataset(ctx, cfg, dir, n, func(d, t int) { env.Progress("generate "+split, d, t) })
				if err != nil {
					return err
				}
				if err := env.MarkDone("generated/" + split); err != nil {
					return err
				}
			}
		}
		if err := extractSplit(ctx, env, p, split, dir, done); err != nil {
			return err
		}
	}
	return nil
}

// checkLabel reports a label the reader cannot learn or that has no value
// to score readings against: a value that is no number, or none and a text
// that does not evaluate.
func checkLabel(text, value string) error {
	if err := encodeText(text); err != nil {
		return err
	}
	var err error
	if value != "" {
		_, err = expr.Final.Normalize(value)
	} else {
		_, err = expr.Final.Eval(text)
	}
	if err != nil {
		return fmt.Errorf("label %q: %w", text, err)
	}
	return nil
}

// readLabels reads labels.txt of dir ("text value" per line, line i for
// image i.png); it returns nil when there is none.
func readLabels(dir string) ([][2]string, error) {
	f, err := os.Open(filepath.Join(dir, "labels.txt"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][2]string
	sc := bufio.NewScanner(f)
	for ln := 1; sc.Scan(); ln++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		text, value, _ := strings.Cut(line, " ")
		value = strings.TrimSpace(value)
		if err := checkLabel(text, value); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", filepath.Join(dir, "labels.txt"), ln, err)
		}
		out = append(out, [2]string{text, value})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "labels.txt"), err)
	}
	return out, nil
}

// extractSplit extracts the images of dir in parallel, writing each image's
// crops as NAME.K.png and marking it done, then the manifest
// (name, line count, text, value; tab-separated).
func extractSplit(ctx context.Context, env tasks.Env, p *JobParams, split, dir string, done map[string]bool) error {
	paths, err := lines.ExpandInputs([]string{dir})
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return fmt.Errorf("%s: no .png/.jpg images", dir)
	}
	labels, err := readLabels(dir)
	if err != nil {
		return err
	}
	labelOf := func(path string) [2]string {
		stem := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		if i, err := strconv.Atoi(stem); err == nil && i >= 0 && i < len(labels) {
			return labels[i]
		}
		return [2]string{}
	}
	if split == splitTrain && len(labels) == 0 {
		return fmt.Errorf("%s: no labels.txt for training", dir)
	}
	out := linesDir(env, split)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	e := p.extractor()
	inner := e.StripHeight - 2*e.StripMargin
	counts := make([]int, len(paths))
	var (
		next     atomic.Int64
		mu       sync.Mutex
		finished int
		firstErr error
		wg       sync.WaitGroup
		pending  []string
	)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		err := env.MarkDone(pending...)
		pending = pending[:0]
		return err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(paths) || cctx.Err() != nil {
					return
				}
				name := strings.TrimSuffix(filepath.Base(paths[i]), filepath.Ext(paths[i]))
				key := split + "/" + name
				var n int
				var err error
				if done[key] {
					n = countCrops(out, name)
				} else {
					n, err = extractCrops(e, paths[i], out, name, inner)
				}
				mu.Lock()
				counts[i] = n
				if err != nil && firstErr == nil {
					firstErr = err
					cancel()
				}
				if err == nil && !done[key] {
					pending = append(pending, key)
					if len(pending) >= 50 {
						if ferr := flush(); ferr != nil && firstErr == nil {
							firstErr = ferr
							cancel()
						}
					}
				}
				finished++
				env.Progress("extract "+split, finished, len(paths))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := flush(); err != nil && firstErr == nil {
		firstErr = err
	}
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	missing := 0
	err = tasks.WriteFileAtomic(manifestPath(env, split), func(w io.Writer) error {
		bw := bufio.NewWriter(w)
		for i, path := range paths {
			l := labelOf(path)
			if counts[i] == 0 {
				missing++
			}
			fmt.Fprintf(bw, "%s\t%d\t%s\t%s\n", strings.TrimSuffix(filepath.Base(path), filepath.Ext(path)), counts[i], l[0], l[1])
		}
		return bw.Flush()
	})
	if err != nil {
		return err
	}
	env.Logf("%s: extracted %d images from %s (%d without lines)", split, len(paths), dir, missing)
	return nil
}

// extractCrops writes the line crops of one image, scaled to height inner,
// and returns how many lines were found (0 when none: the image still
// counts as done, its prediction will be empty).
func extractCrops(e *lines.Extractor, path, out, name string, inner int) (int, error) {
	img, err := imagefile.ReadGray(path)
	if err != nil {
		return 0, err
	}
	crops, _, err := e.ExtractLines(img, nil)
	if errors.Is(err, lines.ErrNoLines) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	for k, c := range crops {
		w := max(1, int(float64(c.Rect.Dx())*float64(inner)/float64(max(1, c.Rect.Dy()))+0.5))
		// Only this job reads the crops: the fastest compression.
		if err := imagefile.WritePNG(filepath.Join(out, fmt.Sprintf("%s.%d.png", name, k)), lines.Resize(c, w, inner), true); err != nil {
			return 0, err
		}
	}
	return len(crops), nil
}

func countCrops(dir, name string) int {
	n := 0
	for {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("%s.%d.png", name, n))); err != nil {
			return n
		}
		n++
	}
}

// loadSplit reads a split's manifest and crops.
func loadSplit(ctx context.Context, env tasks.Env, split string) ([]*example, error) {
	path := manifestPath(env, split)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s (run the data task first): %w", path, err)
	}
	var out []*example
	for ln, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		f := strings.Split(line, "\t")
		if len(f) != 4 {
			return nil, fmt.Errorf("%s:%d: want 4 tab-separated fields", path, ln+1)
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, fmt.Errorf("%s:%d: line count: %w", path, ln+1, err)
		}
		x := &example{Name: f[0], Text: f[2], Value: f[3]}
		for k := range n {
			c, err := readGray(filepath.Join(linesDir(env, split), fmt.Sprintf("%s.%d.png", f[0], k)))
			if err != nil {
				return nil, err
			}
			x.Crops = append(x.Crops, c)
		}
		out = append(out, x)
	}
	return out, nil
}

func readGray(path string) (*image.Gray, error) {
	img, err := imagefile.ReadGray(path)
	if err != nil {
		return nil, err
	}
	return lines.ToGray(img), nil
}

// splitVal holds out the last val_fraction of the labeled training
// examples, the same for every ensemble member.
func splitVal(all []*example, frac float64) (trn, val []*example) {
	var labeled []*example
	for _, x := range all {
		if x.Text != "" && len(x.Crops) > 0 {
			labeled = append(labeled, x)
		}
	}
	nVal := int(float64(len(labeled)) * frac)
	if frac > 0 && nVal == 0 && len(labeled) > 1 {
		nVal = 1
	}
	return labeled[:len(labeled)-nVal], labeled[len(labeled)-nVal:]
}
