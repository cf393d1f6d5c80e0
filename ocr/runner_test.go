package ocr

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dl4img/dl4img/jobs"
	"github.com/dl4img/dl4img/ocr/expr"
	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/tasks"
)

// TestArithCTCThroughRunner submits a tiny arith-ctc job to a real SQLite
// store, drains it with a worker and checks result.txt: one line per test
// image, "expression value" with the value computed from the expression.
func TestArithCTCThroughRunner(t *testing.T) {
	ctx := context.Background()
	db, err := store.Open(ctx, filepath.Join(t.TempDir(), "dl4img.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	out := filepath.Join(t.TempDir(), "submission")
	id, err := jobs.Submit(ctx, db, tasks.Default, jobs.Request{Kind: KindArithCTC, Sets: []string{
		"width=128", "height=32", "filters=4", "dense=8", "rnn_hidden=8", "train_size=32", "val_size=16", "test_size=12",
		"batch_size=16", "epochs=2", "steps_per_epoch=2", "out=" + out}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	w := &jobs.Worker{DB: db, Registry: tasks.Default, Root: t.TempDir(), Backend: "go", Drain: true, JobID: id}
	res, err := w.Run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("job ran in %s: %+v", time.Since(start).Round(time.Millisecond), res)
	ts, err := db.Tasks(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range ts {
		if task.State != store.Succeeded {
			t.Fatalf("task %s: %s %s", task.Name, task.State, task.Error)
		}
	}

	f, err := os.Open(filepath.Join(out, ResultFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		fields := strings.Split(sc.Text(), " ")
		if len(fields) != 2 || fields[0] == "" {
			t.Fatalf("result.txt:%d: %q, want \"expression value\"", n+1, sc.Text())
		}
		want, ok := expr.Prelim.Value(fields[0])
		if !ok {
			want = NotComputableValue
		}
		if fields[1] != want {
			t.Errorf("result.txt:%d: value %s, want %s", n+1, fields[1], want)
		}
	}
	if n != 12 {
		t.Errorf("result.txt has %d lines, want 12", n)
	}

	arts, err := db.JobArtifacts(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	roles := map[string]string{}
	for _, a := range arts {
		roles[a.Role] = a.Path
	}
	if roles["submission"] != filepath.Join(out, ResultFile) || roles["predictions"] != filepath.Join(out, PredictionsFile) || roles["report"] == "" {
		t.Errorf("artifacts %v", roles)
	}
	ms, err := db.JobMetrics(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, m := range ms {
		count[m.Name]++
	}
	for name, want := range map[string]int{"loss": 2, "val_loss": 2, "val_acc": 2, "val_seq_acc": 2, "val_both_acc": 2,
		"skipped_bad": 1, "test_seq_acc": 1, "test_value_acc": 1, "test_both_acc": 1, "test_not_computable": 1} {
		if count[name] != want {
			t.Errorf("metric %s recorded %d times, want %d", name, count[name], want)
		}
	}
}
