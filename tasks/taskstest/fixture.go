package taskstest

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/gomlx/gomlx/ml/train"

	"github.com/dl4img/dl4img/tasks"
)

// WriteFixtures tells fixture tests to write their fixtures with the code
// of the day (DL4IMG_WRITE_FIXTURES=1) instead of checking against them.
func WriteFixtures() bool { return os.Getenv("DL4IMG_WRITE_FIXTURES") != "" }

// TrainCheckpoint trains with tr for steps steps on batch(step) and saves a
// checkpoint of its store in dir (emptied first) as a train task does: the
// fixture of a test that a checkpoint written by one version of a model
// still loads in the next.
func TrainCheckpoint(tb testing.TB, tr *train.Trainer, dir string, steps int, batch func(step int) (train.Batch, error)) {
	tb.Helper()
	if err := os.RemoveAll(dir); err != nil {
		tb.Fatal(err)
	}
	ck, err := tasks.OpenCheckpoints(nil, tr.Store(), dir, 2)
	if err != nil {
		tb.Fatal(err)
	}
	for step := range steps {
		b, err := batch(step)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := tr.TrainStep(b); err != nil {
			tb.Fatal(err)
		}
	}
	if err := ck.Save(steps); err != nil {
		tb.Fatal(err)
	}
}

// JSONFixture reads the JSON file path into want; with WriteFixtures it
// first writes got there.
func JSONFixture(tb testing.TB, path string, got, want any) {
	tb.Helper()
	if WriteFixtures() {
		data, err := json.MarshalIndent(got, "", " ")
		if err == nil {
			err = os.WriteFile(path, data, 0o644)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(data, want); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
}
