package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/model/checkpoint"
)

// Checkpoints saves a model.Store's variables (weights, optimizer state,
// global step) under a directory and restores the newest usable one.
//
// GoMLX writes a checkpoint as <base>.bin then <base>.json in place, so a
// crash or a full disk can leave a torn newest checkpoint. Open discards
// torn ones and falls back to the previous checkpoint, which Keep retains.
type Checkpoints struct {
	h   *checkpoint.Handler
	env Env
	dir string
}

// OpenCheckpoints loads the newest usable checkpoint in dir into store (if
// any) and returns a handle to save more. keep is how many to retain (>= 2
// so that one torn write never loses everything).
func OpenCheckpoints(env Env, store *model.Store, dir string, keep int) (*Checkpoints, error) {
	if keep < 2 {
		keep = 2
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("checkpoints: %w", err)
	}
	removeTorn(dir)
	for {
		h, err := checkpoint.Build(store).Dir(dir).Keep(keep).Done()
		if err == nil {
			return &Checkpoints{h: h, env: env, dir: dir}, nil
		}
		// The newest one did not load: set it aside and try the previous.
		bases := listCheckpoints(dir)
		if len(bases) == 0 {
			return nil, fmt.Errorf("checkpoints in %s: %w", dir, err)
		}
		newest := bases[len(bases)-1]
		if env != nil {
			env.Logf("checkpoint %s is unusable (%v); falling back to the previous one", newest, err)
		}
		for _, ext := range []string{checkpoint.JsonNameSuffix, checkpoint.BinDataSuffix} {
			if rerr := os.Rename(filepath.Join(dir, newest+ext), filepath.Join(dir, newest+ext+".bad")); rerr != nil {
				return nil, fmt.Errorf("checkpoints in %s: %w (and cannot set it aside: %v)", dir, err, rerr)
			}
		}
	}
}

func listCheckpoints(dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "checkpoint-*"+checkpoint.JsonNameSuffix))
	var bases []string
	for _, p := range m {
		bases = append(bases, strings.TrimSuffix(filepath.Base(p), checkpoint.JsonNameSuffix))
	}
	sort.Strings(bases)
	return bases
}

// removeTorn deletes checkpoint halves that a crash left behind: data files
// without metadata, and metadata that is not valid JSON.
func removeTorn(dir string) {
	bins, _ := filepath.Glob(filepath.Join(dir, "checkpoint-*"+checkpoint.BinDataSuffix))
	for _, b := range bins {
		base := strings.TrimSuffix(b, checkpoint.BinDataSuffix)
		js := base + checkpoint.JsonNameSuffix
		raw, err := os.ReadFile(js)
		if err != nil || !json.Valid(raw) {
			os.Remove(b)
			os.Remove(js)
		}
	}
}

// Save writes a checkpoint for the store's current state and records it at
// step. On error (e.g. disk full) the previous checkpoints stay usable.
func (c *Checkpoints) Save(step int) error {
	if err := c.h.Save(); err != nil {
		return fmt.Errorf("save checkpoint at step %d: %w", step, err)
	}
	bases := listCheckpoints(c.dir)
	if len(bases) == 0 {
		return fmt.Errorf("save checkpoint at step %d: nothing written in %s", step, c.dir)
	}
	path := filepath.Join(c.dir, bases[len(bases)-1])
	if c.env != nil {
		return c.env.Checkpoint(step, path)
	}
	return nil
}

// Dir is where the checkpoints live.
func (c *Checkpoints) Dir() string { return c.dir }

// divergedSuffix marks checkpoint files set aside by SetAsideFrom: kept on
// disk, never loaded.
const divergedSuffix = ".diverged"

// checkpointStep reads the global step GoMLX writes into a checkpoint's
// name ("…-step-00000050", "…-initial" for step 0).
func checkpointStep(base string) (int, bool) {
	if strings.HasSuffix(base, "-initial") {
		return 0, true
	}
	i := strings.LastIndex(base, "-step-")
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(base[i+len("-step-"):])
	return n, err == nil
}

// SetAsideFrom renames the checkpoints of step >= from out of the way
// (suffix .diverged), so that the next OpenCheckpoints loads the newest
// older one, and returns that one's step (0 when none is left: a retry
// starts from the beginning).
func (c *Checkpoints) SetAsideFrom(from int) (last int, err error) {
	var errs []error
	for _, base := range listCheckpoints(c.dir) {
		step, ok := checkpointStep(base)
		if !ok {
			continue
		}
		if step < from {
			last = max(last, step)
			continue
		}
		for _, ext := range []string{checkpoint.JsonNameSuffix, checkpoint.BinDataSuffix} {
			p := filepath.Join(c.dir, base+ext)
			if err := os.Rename(p, p+divergedSuffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, fmt.Errorf("set aside checkpoint: %w", err))
			}
		}
	}
	return last, errors.Join(errs...)
}
