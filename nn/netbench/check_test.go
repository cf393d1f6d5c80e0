package netbench

import (
	"context"
	"math"
	"testing"

	"github.com/dl4img/dl4img/engine"
	"github.com/dl4img/dl4img/engine/lower"
	"github.com/gomlx/compute"
)

func TestCheckDeterministic(t *testing.T) {
	a, err := Check(goBackend(t), "crnn", 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Check(goBackend(t), "crnn", 2)
	if err != nil {
		t.Fatal(err)
	}
	if e, err := RelErr(a, b); err != nil || e != 0 {
		t.Errorf("two runs differ: rel err %g, %v", e, err)
	}
	if !(a.Loss > 0) || !(a.GradNorm > 0) || !(a.OutputNorm > 0) || len(a.Outputs) != 2*CRNNSteps*CRNNClasses {
		t.Errorf("implausible result: loss %g grad %g out %g, %d outputs", a.Loss, a.GradNorm, a.OutputNorm, len(a.Outputs))
	}
	// Another batch gives another result: the comparison can fail.
	c, err := Check(goBackend(t), "crnn", 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := RelErr(c, a); err == nil {
		t.Error("batch 3 vs batch 2 compared without error")
	}
	c.Batch, c.Outputs = a.Batch, c.Outputs[:len(a.Outputs)]
	if e, _ := RelErr(c, a); !(e > 1e-3) {
		t.Errorf("different inputs: rel err %g, want > 1e-3", e)
	}
}

// TestNetsEngineMatchesLowering trains each book net for 20 steps with the
// engine (convolutions and pools on oneDNN) and without it (the Go
// backend with the lowering alone): the losses agree, and the engine ran
// every convolution and pool itself.
func TestNetsEngineMatchesLowering(t *testing.T) {
	for _, net := range Nets() {
		t.Run(net, func(t *testing.T) {
			eng := goBackend(t)
			plain, err := compute.NewWithConfig("go:ops_sequential")
			if err != nil {
				t.Fatal(err)
			}
			// Batch 2 (1 for the FCN, slow on the lowering): at batch 1 the
			// captcha net memorizes its batch and both losses reach 0.
			batch := 2
			if net == "fcn" {
				batch = 1
			}
			want, err := Run(context.Background(), lower.Wrap(plain), net, batch, 19)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Run(context.Background(), eng, net, batch, 19)
			if err != nil {
				t.Fatal(err)
			}
			if rel := math.Abs(got.FinalLoss-want.FinalLoss) / math.Abs(want.FinalLoss); !(rel <= 1e-3) {
				t.Errorf("loss after 20 steps: engine %g, lowering %g (relative difference %.2g)", got.FinalLoss, want.FinalLoss, rel)
			}
			s, _ := engine.StatsOf(eng)
			if len(s.Kept) > 0 || len(s.Fallbacks) > 0 || s.Ran("conv forward") == 0 {
				t.Errorf("not everything ran on oneDNN: %s", s)
			}
			t.Logf("loss %g (lowering %g); %s", got.FinalLoss, want.FinalLoss, s)
		})
	}
}
