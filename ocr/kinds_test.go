package ocr

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dl4img/dl4img/tasks"
	"github.com/dl4img/dl4img/tasks/taskstest"
)

// resolve builds a kind's params like `dl4img submit` does.
func resolve(t *testing.T, kind string, sets ...string) *Params {
	t.Helper()
	k, err := tasks.Default.Job(kind)
	if err != nil {
		t.Fatal(err)
	}
	p, err := k.Resolve(nil, sets)
	if err != nil {
		t.Fatalf("resolve %s %v: %v", kind, sets, err)
	}
	return p.(*Params)
}

func taskRaw(t *testing.T, kind string, p *Params) json.RawMessage {
	t.Helper()
	raw, err := json.Marshal(&taskParams{Kind: kind, Params: p})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// runTasks runs data → train → predict → evaluate in one in-memory job and
// returns the envs by task name.
func runTasks(t *testing.T, kind string, p *Params) map[string]*taskstest.Env {
	t.Helper()
	raw := taskRaw(t, kind, p)
	root := taskstest.New(t, "data")
	envs := map[string]*taskstest.Env{"data": root}
	for _, step := range []struct {
		name string
		fn   tasks.TaskFunc
	}{{"data", dataTask}, {"train", trainTask}, {"predict", predictTask}, {"evaluate", evaluateTask}} {
		env := envs["data"]
		if step.name != "data" {
			env = root.Task(step.name)
			envs[step.name] = env
		}
		start := time.Now()
		if err := step.fn(context.Background(), env, raw); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		t.Logf("%s took %s", step.name, time.Since(start).Round(time.Millisecond))
	}
	return envs
}

func last(t *testing.T, env *taskstest.Env, name string) float64 {
	t.Helper()
	v := env.Values(name)
	if len(v) == 0 {
		t.Fatalf("metric %s not recorded", name)
	}
	return v[len(v)-1]
}

func testCTCSets() []string {
	return []string{"width=48", "height=24", "charset=0123456789", "length=2", "filters=8", "dense=32", "rnn_hidden=32",
		"font_sizes=16,19", "distortion=0.25", "bn_momentum=0.9", "data=stream", "val_size=200", "test_size=200",
		"batch_size=16", "epochs=8", "steps_per_epoch=100", "patience=0", "learning_rate=0.003"}
}

// TestCaptchaCTCLearns trains the CRNN on 2-digit captchas and requires
// sequence accuracy far above chance (1/100) on fresh test images.
func TestCaptchaCTCLearns(t *testing.T) {
	p := resolve(t, KindCaptchaCTC, testCTCSets()...)
	envs := runTasks(t, KindCaptchaCTC, p)
	tr := envs["train"]
	t.Logf("val_seq_acc per epoch: %v", tr.Values("val_seq_acc"))
	t.Logf("val_loss per epoch: %v", tr.Values("val_loss"))
	for _, m := range []string{"loss", "val_loss", "val_acc", "val_seq_acc", "val_cer"} {
		if len(tr.Values(m)) != p.Epochs {
			t.Errorf("metric %s recorded %d times, want once per epoch (%d)", m, len(tr.Values(m)), p.Epochs)
		}
	}
	ev := envs["evaluate"]
	seq, acc := last(t, ev, "test_seq_acc"), last(t, ev, "test_acc")
	t.Logf("test_seq_acc=%.3f test_acc=%.3f test_cer=%.3f", seq, acc, last(t, ev, "test_cer"))
	if seq < 0.3 {
		t.Errorf("test sequence accuracy %.3f, want >= 0.3 (chance 0.01)", seq)
	}
	res := envs["predict"].ArtifactPath("submission")
	data, err := os.ReadFile(res)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != p.TestSize {
		t.Errorf("result.txt has %d lines, want %d", n, p.TestSize)
	}
	if _, err := os.Stat(envs["evaluate"].ArtifactPath("report")); err != nil {
		t.Errorf("confusions report: %v", err)
	}
}
