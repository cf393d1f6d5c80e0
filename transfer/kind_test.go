package transfer

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dl4img/dl4img/tasks"
	"github.com/dl4img/dl4img/tasks/taskstest"
)

func resolve(t testing.TB, sets ...string) json.RawMessage {
	t.Helper()
	k, err := tasks.Default.Job("transfer")
	if err != nil {
		t.Fatal(err)
	}
	p, err := k.Resolve(nil, sets)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func runTask(t testing.TB, env *taskstest.Env, fn tasks.TaskFunc, raw json.RawMessage) {
	t.Helper()
	if err := fn(context.Background(), env, raw); err != nil {
		t.Fatalf("%s: %v", env.Name, err)
	}
}

// TestJobEndToEnd runs generate → features → train → cam → submit on
// generated cats vs dogs with the fixture backbone, and checks that the
// head learns, the submission's format, and the CAM files.
func TestJobEndToEnd(t *testing.T) {
	raw := resolve(t, "preset=demo", "synth_per_class=80", "synth_test=24", "epochs=25", "cam_images=2", "learning_rate=0.01")
	gen := taskstest.New(t, "generate")
	root := gen.Root
	runTask(t, gen, generateTask, raw)
	runTask(t, gen.Task("features"), featuresTask, raw)
	tr := gen.Task("train")
	runTask(t, tr, trainTask, raw)
	accs := tr.Values("val_acc")
	best := tr.Values("best_val_acc")
	t.Logf("val_acc per epoch %.3f; best %v; val_loss %v", accs, best, tr.Values("best_val_loss"))
	if len(best) != 1 || best[0] < 0.8 {
		t.Errorf("best validation accuracy %v, want >= 0.8 (chance is 0.5)", best)
	}
	cam := gen.Task("cam")
	runTask(t, cam, camTask, raw)
	sub := gen.Task("submit")
	runTask(t, sub, submitTask, raw)
	t.Logf("test acc %v loss %v clipped %v", sub.Values("test_acc"), sub.Values("test_loss"), sub.Values("test_loss_clipped"))
	if acc := sub.Values("test_acc"); len(acc) != 1 || acc[0] < 0.8 {
		t.Errorf("test accuracy %v, want >= 0.8", acc)
	}
	path := sub.ArtifactPath("submission")
	if path != filepath.Join(root, "submission.csv") {
		t.Fatalf("submission artifact %q", path)
	}
	checkSubmission(t, path, 24, 0.005)
	cams, _ := filepath.Glob(filepath.Join(root, "cam", "*.png"))
	if len(cams) != 2 {
		t.Errorf("cam files %v, want 2", cams)
	}
}

// checkSubmission checks a two-class submission line by line.
func checkSubmission(t *testing.T, path string, n int, clip float64) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0] != "id,label" {
		t.Fatalf("header %q, want id,label", lines[0])
	}
	if len(lines) != n+1 {
		t.Fatalf("%d rows, want %d", len(lines)-1, n)
	}
	row := regexp.MustCompile(`^([0-9]+),(0\.[0-9]{6})$`)
	for i, l := range lines[1:] {
		m := row.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %d %q: want <id>,<probability>", i+2, l)
		}
		if id, _ := strconv.Atoi(m[1]); id != i+1 {
			t.Errorf("line %d: id %d, want %d (sorted numerically)", i+2, id, i+1)
		}
		if v, _ := strconv.ParseFloat(m[2], 64); v < clip || v > 1-clip {
			t.Errorf("line %d: label %v outside [%g, %g]", i+2, v, clip, 1-clip)
		}
	}
}

func resolveKind(t *testing.T) (tasks.JobKind, error) {
	t.Helper()
	return tasks.Default.Job("transfer")
}

// TestFinetune fine-tunes the last conv layer for a few steps: only that
// layer's weights (and the head) move, and the job still submits.
func TestFinetune(t *testing.T) {
	raw := resolve(t, "preset=demo", "synth_per_class=12", "synth_test=4", "epochs=3", "cam_images=1",
		"finetune_layers=1", "finetune_epochs=1", "steps_per_epoch=2", "batch_size=8", "finetune_lr=0.001")
	gen := taskstest.New(t, "generate")
	runTask(t, gen, generateTask, raw)
	runTask(t, gen.Task("features"), featuresTask, raw)
	runTask(t, gen.Task("train"), trainTask, raw)
	ft := gen.Task("finetune")
	runTask(t, ft, finetuneTask, raw)
	if v := ft.Values("val_loss"); len(v) != 1 {
		t.Errorf("fine-tune val_loss %v, want one epoch", v)
	}
	// Compare the fine-tuned backbone with the original.
	p, _ := decode(raw)
	orig, err := loadBackbones(gen, p)
	if err != nil {
		t.Fatal(err)
	}
	tuned, _ := loadBackbones(gen, p)
	if err := tasks.LoadWeights(tuned[0].store, headDir(gen, p)); err != nil {
		t.Fatal(err)
	}
	tune, err := orig[0].tuneVars(1)
	if err != nil || len(tune) != 2 {
		t.Fatalf("tuneVars: %v %v, want the last conv's weight and bias", tune, err)
	}
	changed := map[string]bool{}
	for v := range orig[0].store.IterVariables() {
		a, _ := v.Value()
		b, _ := tuned[0].store.GetVariable(model.JoinPath(v.Scope(), v.Name())).Value()
		x, y := tensors.MustCopyFlatData[float32](a), tensors.MustCopyFlatData[float32](b)
		changed[v.Name()] = !reflect.DeepEqual(x, y)
	}
	for name, c := range changed {
		if c != tune[name] {
			t.Errorf("variable %s: changed=%v, tuned=%v", name, c, tune[name])
		}
	}
	runTask(t, gen.Task("cam"), camTask, raw)
	sub := gen.Task("submit")
	runTask(t, sub, submitTask, raw)
	checkSubmission(t, sub.ArtifactPath("submission"), 4, 0.005)
}

// TestScratch: backbone=scratch trains the small CNN from scratch end to
// end (a few steps), says so in the metrics, and submits.
func TestScratch(t *testing.T) {
	raw := resolve(t, "preset=demo", "backbone=scratch", "synth_per_class=12", "synth_test=4", "epochs=2",
		"steps_per_epoch=2", "batch_size=8", "cam_images=1")
	k, _ := tasks.Default.Job("transfer")
	p, _ := decode(raw)
	specs, err := k.Plan(p)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range specs {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "generate,scratch,cam,submit" {
		t.Errorf("plan %v", names)
	}
	gen := taskstest.New(t, "generate")
	runTask(t, gen, generateTask, raw)
	sc := gen.Task("scratch")
	runTask(t, sc, scratchTask, raw)
	if v := sc.Values("from_scratch"); len(v) != 1 || v[0] != 1 {
		t.Errorf("from_scratch %v", v)
	}
	if v := sc.Values("val_loss"); len(v) != 2 {
		t.Errorf("val_loss %v, want 2 epochs", v)
	}
	runTask(t, gen.Task("cam"), camTask, raw)
	sub := gen.Task("submit")
	runTask(t, sub, submitTask, raw)
	checkSubmission(t, sub.ArtifactPath("submission"), 4, 0.005)
	if cams, _ := filepath.Glob(filepath.Join(gen.Root, "cam", "*.png")); len(cams) != 1 {
		t.Errorf("cams %v", cams)
	}
}
