package tasks

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/gomlx/compute"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"
)

// state makes a store holding a weight and a global step, like a trainer's.
func state(t *testing.T, backend compute.Backend, dir string, w float32, step int64) (*model.Store, *Checkpoints) {
	t.Helper()
	st := model.NewStore()
	ck, err := OpenCheckpoints(nil, st, dir, 3)
	if err != nil {
		t.Fatal(err)
	}
	if w >= 0 {
		v := st.Scope("/model").VariableWithValue("w", []float32{w, w})
		v.MustSetValue(tensors.FromValue([]float32{w, w}))
		optimizer.GetGlobalStepVar(st).MustSetValue(tensors.FromValue(step))
	}
	return st, ck
}

func loaded(t *testing.T, dir string) (float32, int64) {
	t.Helper()
	st := model.NewStore()
	if _, err := OpenCheckpoints(nil, st, dir, 3); err != nil {
		t.Fatal(err)
	}
	step := optimizer.GetGlobalStep(st)
	v := st.Scope("/model").VariableWithValue("w", []float32{-1, -1})
	return tensors.MustCopyFlatData[float32](v.MustValue())[0], step
}

func TestCheckpointTornNewestFallsBack(t *testing.T) {
	backend, _, err := NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	_, ck := state(t, backend, dir, 1, 10)
	if err := ck.Save(10); err != nil {
		t.Fatal(err)
	}
	st, ck := state(t, backend, dir, 2, 20)
	_ = st
	if err := ck.Save(20); err != nil {
		t.Fatal(err)
	}
	if w, step := loaded(t, dir); w != 2 || step != 20 {
		t.Fatalf("loaded w=%v step=%d, want 2 at 20", w, step)
	}
	// Tear the newest checkpoint's data as a crash mid-write would.
	bases := listCheckpoints(dir)
	bin := filepath.Join(dir, bases[len(bases)-1]+".bin")
	if err := os.Truncate(bin, 3); err != nil {
		t.Fatal(err)
	}
	if w, step := loaded(t, dir); w != 1 || step != 10 {
		t.Fatalf("after tearing the newest: w=%v step=%d, want the previous (1 at 10)", w, step)
	}
	// Metadata that is not JSON (the other half of a torn write) too.
	bases = listCheckpoints(dir)
	os.WriteFile(filepath.Join(dir, bases[len(bases)-1]+".json"), []byte(`{"Variables": [`), 0o644)
	if w, step := loaded(t, dir); w != -1 || step != 0 {
		t.Fatalf("with no usable checkpoint: w=%v step=%d, want a fresh start", w, step)
	}
}

// TestCheckpointDiskFull fills a small tmpfs: the failing save is an error
// naming the checkpoint, and the previous checkpoint still loads.
func TestCheckpointDiskFull(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (needs root): %v %s", err, out)
	}
	// Lazy unmount: GoMLX leaves the failed checkpoint file open.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v %s", err, out)
		}
	})
	backend, _, err := NewBackend("go")
	if err != nil {
		t.Fatal(err)
	}
	_, ck := state(t, backend, dir, 1, 10)
	if err := ck.Save(10); err != nil {
		t.Fatal(err)
	}
	// Fill the disk.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	_, ck = state(t, backend, dir, 2, 20)
	err = ck.Save(20)
	if err == nil || !strings.Contains(err.Error(), "no space left") || !strings.Contains(err.Error(), "step 20") {
		t.Fatalf("save on a full disk: %v", err)
	}
	if w, step := loaded(t, dir); w != 1 || step != 10 {
		t.Fatalf("after a failed save: w=%v step=%d, want 1 at 10", w, step)
	}
}
