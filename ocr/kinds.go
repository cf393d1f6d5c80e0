package ocr

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"

	"github.com/dl4img/dl4img/ocr/reader"
	"github.com/dl4img/dl4img/tasks"
)

// Job kinds.
const (
	KindCaptchaCNN = "captcha-cnn"
	KindCaptchaCTC = "captcha-ctc"
	KindArithCTC   = "arith-ctc"
)

// Data modes for generated training data.
const (
	DataCache  = "cache"  // train_size images generated once into the job dir
	DataStream = "stream" // fresh images every step, generated on the fly
)

// Params of the OCR job kinds (one struct, kind-specific defaults).
type Params struct {
	tasks.Common
	Data       string   `json:"data" doc:"generated training data: cache (train_size images generated once into the job dir, reused) or stream (fresh images every step); ignored with train_dir"`
	TrainSize  int      `json:"train_size" doc:"images in the generated training cache (data=cache)"`
	ValSize    int      `json:"val_size" doc:"generated validation images (without train_dir; with it, val_fraction is held out)"`
	TestSize   int      `json:"test_size" doc:"fresh generated images to evaluate and predict when test_dir is not set"`
	Width      int      `json:"width" doc:"image width in pixels (model input; train_dir/test_dir images must have it)"`
	Height     int      `json:"height" doc:"image height in pixels"`
	Charset    string   `json:"charset" doc:"characters to read (arith-ctc: fixed to 0123456789+-*())"`
	Length     int      `json:"length" doc:"characters per captcha (captcha-cnn: exactly this many heads; CTC kinds: the longest label)"`
	MinLength  int      `json:"min_length" doc:"shortest generated captcha for captcha-ctc (0: = length)"`
	FontSizes  []int    `json:"font_sizes" doc:"generator font sizes in pixels (empty: the book's, scaled to height)"`
	Fonts      []string `json:"fonts" doc:"generator font files or directories (empty: Go fonts + DejaVu)"`
	Distortion float64  `json:"distortion" doc:"scales the generator's rotation, warp and noise dots/arc (1: the captcha library's; 0: clean glyphs), e.g. for a curriculum or a quick test"`
	Filters    int      `json:"filters" doc:"filters of the first conv block, doubling per block (book: 32)"`
	Dense      int      `json:"dense" doc:"CTC kinds: dense units before the GRUs (book: 128)"`
	RNNHidden  int      `json:"rnn_hidden" doc:"CTC kinds: GRU units per direction (book: 128)"`
	BNMomentum float64  `json:"bn_momentum" doc:"CTC kinds: momentum of the batch-norm moving averages used at inference (book/Keras: 0.99; 0.9 tracks the fast-changing weights of short runs)"`

	FineLearningRate float64 `json:"fine_learning_rate" doc:"second-phase learning rate once val_loss stops improving, after reloading the best weights (0: no second phase)"`
	Patience         int     `json:"patience" doc:"epochs without val_loss improvement before the next learning-rate phase, then early stopping (0: never)"`
	CheckpointEvery  int     `json:"checkpoint_every" doc:"save a checkpoint every N steps (0: each epoch)"`
	SkipBad          bool    `json:"skip_bad" doc:"skip bad labels.txt lines and images (counted in metric skipped_bad) instead of failing"`

	kind string
}

// taskParams is what each task receives: the job's params and its kind.
type taskParams struct {
	Kind string `json:"kind"`
	*Params
}

func bookDefaults(kind string) *Params {
	p := &Params{
		Common: tasks.Common{Epochs: 50, StepsPerEpoch: 400, BatchSize: 128, LearningRate: 1e-3,
			ValFraction: 0.1, Seed: 1},
		Data: DataCache, TrainSize: 51200, ValSize: 1024, TestSize: 10000,
		Width: 170, Height: 80, Charset: CaptchaCharset, Length: 4,
		Distortion: 1, Filters: 32, Dense: 128, RNNHidden: 128, BNMomentum: 0.99,
		FineLearningRate: 1e-4, Patience: 3,
		kind: kind,
	}
	if kind == KindArithCTC {
		p.Width, p.Height = 180, 60
		p.Charset, p.Length = ArithCharset, ArithMaxTextLen
	}
	return p
}

// Net is the network the kind trains: the book's CNN or its CRNN.
func (p *Params) Net() reader.Net {
	classes := utf8.RuneCountInString(p.Charset)
	if p.kind == KindCaptchaCNN {
		return reader.CNN{Height: p.Height, Width: p.Width, Classes: classes, Length: p.Length, Filters: p.Filters}
	}
	return reader.Book(p.Height, p.Width, classes, p.Length, p.Filters, p.Dense, p.RNNHidden, p.BNMomentum)
}

// checkNet reports a network the parameters cannot build or train.
func (p *Params) checkNet() error {
	net := p.Net()
	if err := net.Check(); err != nil {
		return err
	}
	// CTC needs a step per character plus a blank between repeated
	// characters: 2*length-1 steps in the worst case.
	if c, ok := net.(reader.CRNN); ok {
		if t := c.Steps() - c.SkipSteps; t < 2*p.Length-1 {
			return fmt.Errorf("width %d gives %d time steps (width/8 - %d), fewer than the %d a %d-character label may need; use width >= %d",
				p.Width, t, c.SkipSteps, 2*p.Length-1, p.Length, (2*p.Length-1+c.SkipSteps)*8)
		}
	}
	return nil
}

// GenConfig is the captcha generator of the kind with seed.
func (p *Params) GenConfig(seed int64) CaptchaConfig {
	var c CaptchaConfig
	ref := 80.0
	if p.kind == KindArithCTC {
		c, ref = ArithConfig(), 60
	} else {
		c = BookConfig()
		c.Charset, c.MinLen, c.MaxLen = p.Charset, p.Length, p.Length
		if p.kind == KindCaptchaCTC && p.MinLength > 0 {
			c.MinLen = p.MinLength
		}
	}
	if len(p.FontSizes) > 0 {
		c.FontSizes = append([]int(nil), p.FontSizes...)
	} else if p.Height != int(ref) {
		// Scale the reference sizes to the height, keeping them distinct.
		var sizes []int
		for _, s := range c.FontSizes {
			v := max(4, int(float64(s)*float64(p.Height)/ref+0.5))
			if len(sizes) == 0 || sizes[len(sizes)-1] != v {
				sizes = append(sizes, v)
			}
		}
		c.FontSizes = sizes
	}
	c.ScaleDistortion(p.Distortion)
	c.Width, c.Height = p.Width, p.Height
	c.Fonts = p.Fonts
	c.Seed = seed
	return c
}

// ScaleDistortion scales the rotation, warp and noise dots and curves by d
// (1: unchanged; 0: clean glyphs), as the kinds' distortion parameter does.
func (c *CaptchaConfig) ScaleDistortion(d float64) {
	if d == 1 {
		return
	}
	c.MaxRotate *= d
	c.WarpX[0], c.WarpX[1] = c.WarpX[0]*d, c.WarpX[1]*d
	c.WarpY[0], c.WarpY[1] = c.WarpY[0]*d, c.WarpY[1]*d
	c.NoiseDots = int(float64(c.NoiseDots)*d + 0.5)
	c.NoiseCurves = int(float64(c.NoiseCurves)*d + 0.5)
}

// Seeds of the generated sets: disjoint streams of the same generator.
func (p *Params) trainSeed() int64 { return p.Seed }
func (p *Params) valSeed() int64   { return p.Seed + 1_000_003 }
func (p *Params) testSeed() int64  { return p.Seed + 2_000_003 }

// Validate checks the parameters at submit time.
func (p *Params) Validate() error {
	if err := p.Common.Validate(); err != nil {
		return err
	}
	switch {
	case p.Epochs < 1 || p.StepsPerEpoch < 1:
		return errors.New("parameters epochs and steps_per_epoch: must be >= 1")
	case p.BatchSize < 1:
		return errors.New("parameter batch_size: must be >= 1")
	case p.LearningRate <= 0:
		return errors.New("parameter learning_rate: must be > 0")
	case p.FineLearningRate < 0:
		return errors.New("parameter fine_learning_rate: must be >= 0")
	case p.Distortion < 0 || p.Distortion > 1:
		return errors.New("parameter distortion: must be in [0, 1]")
	case p.BNMomentum <= 0 || p.BNMomentum >= 1:
		return errors.New("parameter bn_momentum: must be in (0, 1)")
	case p.Patience < 0:
		return errors.New("parameter patience: must be >= 0")
	case p.CheckpointEvery < 0:
		return errors.New("parameter checkpoint_every: must be >= 0")
	case p.Data != DataCache && p.Data != DataStream:
		return fmt.Errorf("parameter data: want %s or %s, got %q", DataCache, DataStream, p.Data)
	case p.TrainDir == "" && p.Data == DataCache && p.TrainSize < p.BatchSize:
		return fmt.Errorf("parameter train_size: %d is less than batch_size %d", p.TrainSize, p.BatchSize)
	case p.TrainDir == "" && p.ValSize < 1:
		return errors.New("parameter val_size: must be >= 1 with generated data")
	case p.TestDir == "" && p.TestSize < 1:
		return errors.New("parameter test_size: must be >= 1 without test_dir")
	case p.TrainDir != "" && p.ValFraction <= 0:
		return errors.New("parameter val_fraction: must be > 0 with train_dir (validation drives the schedule)")
	}
	if err := p.validateCharset(); err != nil {
		return err
	}
	if p.MinLength < 0 || p.MinLength > p.Length {
		return fmt.Errorf("parameter min_length: %d outside [0, length=%d]", p.MinLength, p.Length)
	}
	if p.MinLength > 0 && p.kind != KindCaptchaCTC {
		return fmt.Errorf("parameter min_length: only captcha-ctc reads variable-length captchas")
	}
	if err := p.checkNet(); err != nil {
		return fmt.Errorf("parameters width/height/length/filters: %w", err)
	}
	gc := p.GenConfig(p.Seed)
	if err := gc.Validate(); err != nil {
		return fmt.Errorf("generator: %w", err)
	}
	for _, d := range []struct{ name, dir string }{{"train_dir", p.TrainDir}, {"test_dir", p.TestDir}} {
		if d.dir == "" {
			continue
		}
		if err := checkDirImageSize(d.dir, p.Width, p.Height); err != nil {
			return fmt.Errorf("parameter %s: %w", d.name, err)
		}
	}
	if p.TrainDir != "" {
		if _, err := os.Stat(filepath.Join(p.TrainDir, LabelsFile)); err != nil {
			return fmt.Errorf("parameter train_dir: %w", err)
		}
	}
	return nil
}

func (p *Params) validateCharset() error {
	if p.kind == KindArithCTC {
		if p.Charset != ArithCharset {
			return fmt.Errorf("parameter charset: arith-ctc reads %q only", ArithCharset)
		}
		if p.Length != ArithMaxTextLen {
			return fmt.Errorf("parameter length: arith-ctc expressions have at most %d characters", ArithMaxTextLen)
		}
		return nil
	}
	if p.Charset == "" {
		return errors.New("parameter charset: empty")
	}
	if strings.ContainsAny(p.Charset, " \t\r\n") {
		return errors.New("parameter charset: must not contain white space")
	}
	seen := map[rune]bool{}
	for _, r := range p.Charset {
		if seen[r] {
			return fmt.Errorf("parameter charset: %q appears twice", r)
		}
		seen[r] = true
	}
	if p.Length < 1 {
		return errors.New("parameter length: must be >= 1")
	}
	return nil
}

// checkDirImageSize compares the first image of dir (0.png or the first
// labels.txt file) with the model's input size, so a mismatch is caught at
// submit time rather than after generating and training.
func checkDirImageSize(dir string, w, h int) error {
	st, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	first := ""
	if _, err := os.Stat(filepath.Join(dir, "0.png")); err == nil {
		first = "0.png"
	} else if data, err := os.ReadFile(filepath.Join(dir, LabelsFile)); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		if f := strings.Fields(line); len(f) > 0 && imageExts[strings.ToLower(filepath.Ext(f[0]))] {
			first = f[0]
		}
	}
	if first == "" {
		return nil // per-line validation reports what is wrong
	}
	f, err := os.Open(filepath.Join(dir, first))
	if err != nil {
		return nil
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return nil
	}
	if cfg.Width != w || cfg.Height != h {
		return fmt.Errorf("%s is %dx%d but the model reads %dx%d images (set width and height)", filepath.Join(dir, first), cfg.Width, cfg.Height, w, h)
	}
	return nil
}

// Register adds the OCR job and task kinds to r.
func Register(r *tasks.Registry) {
	type kindInfo struct {
		name, doc string
		demo      map[string]any
	}
	// The demos read 2-digit captchas (48x24) or expressions (128x32) with a
	// quarter of the library's distortion: the book's sizes need hours on a
	// laptop CPU, these show learning in a few minutes on 2 cores.
	small := func(extra map[string]any) map[string]any {
		m := map[string]any{"width": 48, "height": 24, "charset": Digits, "length": 2, "font_sizes": []int{16, 19},
			"filters": 8, "dense": 32, "rnn_hidden": 32, "bn_momentum": 0.9, "distortion": 0.25, "data": DataStream,
			"val_size": 200, "test_size": 500, "batch_size": 16, "epochs": 8, "steps_per_epoch": 100,
			"learning_rate": 0.003, "patience": 2}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	kinds := []kindInfo{
		{KindCaptchaCNN, "book captcha CNN: 4 blocks of 2 conv + max pool, dropout, one softmax head per character (data → train → predict → evaluate)",
			small(map[string]any{"learning_rate": 0.001})},
		{KindCaptchaCTC, "book CRNN captcha reader: conv/batchnorm blocks, 2 bidirectional GRUs, CTC (first 2 steps ignored), greedy decoding (data → train → predict → evaluate)",
			small(nil)},
		{KindArithCTC, "CRNN + CTC reader of 180x60 arithmetic expressions (0123456789+-*()), scored on text and math/big value; writes result.txt",
			small(map[string]any{"width": 128, "height": 32, "charset": ArithCharset, "length": ArithMaxTextLen,
				"font_sizes": []int{19, 24, 29}, "test_size": 200})},
	}
	for _, k := range kinds {
		name := k.name
		r.RegisterJob(tasks.JobKind{
			Name:      name,
			Doc:       k.doc,
			NewParams: func() any { return bookDefaults(name) },
			Headline:  "val_seq_acc",
			Presets:   map[string]map[string]any{"demo": k.demo},
			Plan: func(raw any) ([]tasks.TaskSpec, error) {
				p, ok := raw.(*Params)
				if !ok {
					return nil, fmt.Errorf("%s: params of type %T", name, raw)
				}
				tp := &taskParams{Kind: name, Params: p}
				return []tasks.TaskSpec{
					{Name: "data", Kind: "ocr.data", Params: tp},
					{Name: "train", Kind: "ocr.train", Deps: []string{"data"}, Params: tp},
					{Name: "predict", Kind: "ocr.predict", Deps: []string{"train"}, Params: tp},
					{Name: "evaluate", Kind: "ocr.evaluate", Deps: []string{"predict"}, Params: tp},
				}, nil
			},
		})
	}
	r.RegisterTask("ocr.data", dataTask)
	r.RegisterTask("ocr.train", trainTask)
	r.RegisterTask("ocr.predict", predictTask)
	r.RegisterTask("ocr.evaluate", evaluateTask)
}

func init() { Register(tasks.Default) }

// decodeTask reads a task's parameters.
func decodeTask(raw json.RawMessage) (*Params, error) {
	var probe struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(raw, &probe); err != nil {
		return nil, fmt.Errorf("task parameters: %w", err)
	}
	switch probe.Kind {
	case KindCaptchaCNN, KindCaptchaCTC, KindArithCTC:
	default:
		return nil, fmt.Errorf("task parameters: unknown ocr kind %q", probe.Kind)
	}
	tp := taskParams{Params: bookDefaults(probe.Kind)}
	if err := tasks.Decode(raw, &tp); err != nil {
		return nil, err
	}
	tp.Params.kind = probe.Kind
	return tp.Params, nil
}
