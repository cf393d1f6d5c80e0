package netbench

import (
	"context"
	"errors"
	"flag"
	"os"
	"testing"

	"github.com/gomlx/compute"
	_ "github.com/gomlx/compute/gobackend"

	"github.com/dl4img/dl4img/engine"
)

// goBackend returns the backend jobs run on (tasks.NewBackend's): the
// pure-Go one with its ops run one at a time (each op still uses all
// cores; with the default inter-op parallelism two large matmuls that
// start concurrently can both block in the worker pool's Saturate waiting
// for each other's slots, a deadlock seen with the captcha net at batch 32
// on 2 cores), under the engine. NETBENCH_BACKEND overrides the config.
func goBackend(tb testing.TB) compute.Backend {
	tb.Helper()
	cfg := os.Getenv("NETBENCH_BACKEND")
	if cfg == "" {
		cfg = "go:ops_sequential"
	}
	b, err := compute.NewWithConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if b, err = engine.Wrap(b); err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestRunUnknownNet(t *testing.T) {
	_, err := Run(context.Background(), goBackend(t), "nope", 1, 1)
	if !errors.Is(err, ErrUnknownNet) {
		t.Fatalf("got %v, want ErrUnknownNet", err)
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, goBackend(t), "crnn", 1, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestRunAllNetsTiny trains every net for a couple of steps at batch 1 so
// the graphs build, run and produce finite losses.
func TestRunAllNetsTiny(t *testing.T) {
	for _, net := range Nets() {
		t.Run(net, func(t *testing.T) {
			r, err := Run(context.Background(), goBackend(t), net, 1, 1)
			if err != nil {
				t.Fatal(err)
			}
			if r.MedianStep <= 0 || r.GFLOPs <= 0 || r.PeakRSSBytes <= 0 {
				t.Errorf("bad result %+v", r)
			}
			if !(r.FinalLoss > 0) || r.FinalLoss > 1e6 {
				t.Errorf("loss %v not a sane positive number", r.FinalLoss)
			}
			t.Logf("%s batch 1: first %v, median %v, %.1f GFLOP/s", net, r.FirstStep, r.MedianStep, r.GFLOPs)
		})
	}
}

var benchSteps = flag.Int("netbench.steps", 3, "timed training steps per net in BenchmarkNets (after 1 warm-up step)")

// BenchmarkNets reports the median step of -netbench.steps steps; run it with
// -benchtime=1x (each b.N iteration would otherwise repeat the whole run), one
// net per process for a meaningful peak RSS:
//
//	GOEXPERIMENT=simd go test -run XXX -bench 'Nets/fcn' -benchtime=1x ./nn/netbench/ -args -netbench.steps=3
func BenchmarkNets(b *testing.B) {
	for _, net := range Nets() {
		b.Run(net, func(b *testing.B) {
			r, err := Run(context.Background(), goBackend(b), net, DefaultBatch(net), *benchSteps)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(r.MedianStep.Seconds(), "s/step")
			b.ReportMetric(r.MedianStepCPU.Seconds(), "cpu-s/step")
			b.ReportMetric(r.GFLOPs, "GFLOP/s")
			b.ReportMetric(float64(r.PeakRSSBytes)/(1<<20), "peakRSS_MiB")
		})
	}
}
