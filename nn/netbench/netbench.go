// Package netbench measures training steps of the three reference networks
// (captcha CNN, CRNN + CTC, FCN with transposed convolutions) built from
// package nn, on any GoMLX backend. bench/torch_ref.py runs the identical
// networks in PyTorch for comparison.
package netbench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/dl4img/dl4img/nn"
	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/train"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	"github.com/gomlx/gomlx/support/exceptions"
)

// Result of one benchmark run.
type Result struct {
	Net     string `json:"net"`
	Backend string `json:"backend"`
	Batch   int    `json:"batch"`
	Steps   int    `json:"steps"`
	// FirstStep includes graph building and compilation.
	FirstStep  time.Duration `json:"first_step_ns"`
	MedianStep time.Duration `json:"median_step_ns"`
	// MedianStepCPU is the median process CPU time (user+system, all threads)
	// per step: less sensitive than wall time to other load on a shared
	// machine. With n fully used threads, wall ~= CPU / n.
	MedianStepCPU time.Duration `json:"median_step_cpu_ns"`
	// FLOPsPerStep counts conv/dense/GRU multiply-adds of forward+backward.
	FLOPsPerStep float64 `json:"flops_per_step"`
	// GFLOPs is the achieved rate: FLOPsPerStep / MedianStep / 1e9.
	GFLOPs float64 `json:"gflops"`
	// PeakRSSBytes is the process's peak resident set size (getrusage
	// ru_maxrss) after the run; it includes anything the process did before.
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	FinalLoss    float64 `json:"final_loss"`
	// Losses are every step's loss, the warm-up step's first.
	Losses []float64 `json:"-"`
}

// ErrUnknownNet is returned for a net name not in Nets().
var ErrUnknownNet = errors.New("netbench: unknown net")

// Nets lists the benchmark network names.
func Nets() []string { return []string{"captcha-cnn", "crnn", "fcn"} }

// DefaultBatch is the batch size the issue specifies for each net.
func DefaultBatch(net string) int {
	if net == "fcn" {
		return 8
	}
	return 32
}

// Run trains net for 1 warm-up step (compilation) plus steps timed steps
// with Adam on deterministic synthetic data, and reports the median step time.
func Run(ctx context.Context, backend compute.Backend, net string, batch, steps int) (res Result, err error) {
	return run(ctx, backend, net, batch, steps, optimizer.Adam().LearningRate(1e-3).Done())
}

func run(ctx context.Context, backend compute.Backend, net string, batch, steps int, opt optimizer.Interface) (res Result, err error) {
	if !slices.Contains(Nets(), net) {
		return res, fmt.Errorf("%w %q (want one of %v)", ErrUnknownNet, net, Nets())
	}
	if batch < 1 || steps < 1 {
		return res, fmt.Errorf("netbench %s: batch (%d) and steps (%d) must be >= 1", net, batch, steps)
	}
	store, err := nn.NewSeededStore(1)
	if err != nil {
		return res, err
	}
	var trainer *train.Trainer
	// Graph-building code panics on misuse; convert to an error here.
	if err := exceptions.TryCatch[error](func() {
		switch net {
		case "captcha-cnn":
			trainer = train.NewTrainer(backend, store, CaptchaCNN, CaptchaLoss, opt, nil, nil)
		case "crnn":
			trainer = train.NewTrainer(backend, store, CRNN, CRNNLoss, opt, nil, nil)
		case "fcn":
			trainer = train.NewTrainer(backend, store, FCN, FCNLoss, opt, nil, nil)
		}
	}); err != nil {
		return res, fmt.Errorf("netbench %s: build trainer: %w", net, err)
	}
	data := newSynthetic(net, batch)
	res = Result{Net: net, Backend: backend.Name(), Batch: batch, Steps: steps, FLOPsPerStep: trainFLOPs(net, batch)}
	times := make([]time.Duration, 0, steps)
	cpuTimes := make([]time.Duration, 0, steps)
	for i := range steps + 1 {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("netbench %s: step %d: %w", net, i, err)
		}
		start, startCPU := time.Now(), ProcessCPU()
		metrics, err := trainer.TrainStep(data.batch())
		if err != nil {
			return res, fmt.Errorf("netbench %s: train step %d: %w", net, i, err)
		}
		if len(metrics) > 0 {
			// Reading the loss back also waits for the step to finish.
			if v, ok := metrics[0].Value().(float32); ok {
				res.FinalLoss = float64(v)
				res.Losses = append(res.Losses, res.FinalLoss)
			}
		}
		d := time.Since(start)
		if i == 0 {
			res.FirstStep = d
		} else {
			times = append(times, d)
			cpuTimes = append(cpuTimes, ProcessCPU()-startCPU)
		}
	}
	res.MedianStep = Median(times)
	res.MedianStepCPU = Median(cpuTimes)
	res.GFLOPs = res.FLOPsPerStep / res.MedianStep.Seconds() / 1e9
	res.PeakRSSBytes = PeakRSS()
	return res, nil
}

// Median of v (sorted in place).
func Median(v []time.Duration) time.Duration {
	slices.Sort(v)
	m := v[len(v)/2]
	if len(v)%2 == 0 {
		m = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return m
}

// ProcessCPU is the process's user + system CPU time, all threads: per-step
// CPU time is steadier than wall time on a shared machine.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakRSS is the process's peak resident set size so far.
func PeakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // Linux reports KiB.
}

// synthetic holds one deterministic batch; the trainer takes ownership of
// the tensors, so each step gets fresh copies.
type synthetic struct {
	dims   [][]int
	floats [][]float32
	ints   [][]int32
	nIn    int // first nIn float arrays are inputs; ints are labels.
}

func lcg(s *uint64) uint32 {
	*s = *s*6364136223846793005 + 1442695040888963407
	return uint32(*s >> 33)
}

func newSynthetic(net string, batch int) *synthetic {
	seed := uint64(42)
	uniform := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(lcg(&seed)%65536) / 65536
		}
		return v
	}
	ints := func(n, mod int) []int32 {
		v := make([]int32, n)
		for i := range v {
			v[i] = int32(lcg(&seed) % uint32(mod))
		}
		return v
	}
	s := &synthetic{nIn: 1}
	switch net {
	case "captcha-cnn":
		s.dims = [][]int{{batch, CaptchaHeight, CaptchaWidth, 3}, {batch, CaptchaChars, 1}}
		s.floats = [][]float32{uniform(batch * CaptchaHeight * CaptchaWidth * 3)}
		s.ints = [][]int32{ints(batch*CaptchaChars, CaptchaClasses)}
	case "crnn":
		s.dims = [][]int{{batch, CRNNHeight, CRNNWidth, 1}, {batch, CRNNMaxLabel}, {batch}}
		s.floats = [][]float32{uniform(batch * CRNNHeight * CRNNWidth)}
		lens := make([]int32, batch)
		for i := range lens {
			lens[i] = 4 + int32(lcg(&seed)%uint32(CRNNMaxLabel-3)) // 4..8 characters
		}
		s.ints = [][]int32{ints(batch*CRNNMaxLabel, CRNNClasses-1), lens}
	case "fcn":
		s.dims = [][]int{{batch, FCNSize, FCNSize, 3}, {batch, FCNSize, FCNSize, 1}}
		s.floats = [][]float32{uniform(batch * FCNSize * FCNSize * 3)}
		s.ints = [][]int32{ints(batch*FCNSize*FCNSize, FCNClasses)}
	}
	return s
}

func (s *synthetic) batch() train.Batch {
	var b train.Batch
	for i, f := range s.floats {
		b.Inputs = append(b.Inputs, tensors.FromFlatDataAndDimensions(slices.Clone(f), s.dims[i]...))
	}
	for i, v := range s.ints {
		b.Labels = append(b.Labels, tensors.FromFlatDataAndDimensions(slices.Clone(v), s.dims[len(s.floats)+i]...))
	}
	return b
}
