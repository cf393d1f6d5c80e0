package nn

import (
	"fmt"

	"github.com/gomlx/gomlx/ml/model"
)

// NewSeededStore returns a model.Store whose variable initialization and
// random ops (dropout) are deterministic for the given seed. The RNG state is
// itself a store variable, so it is saved in checkpoints and a resumed run
// continues the same noise sequence.
func NewSeededStore(seed int64) (*model.Store, error) {
	store := model.NewStore()
	store.SetParam(model.ParamInitialSeed, seed)
	if err := store.SetRNGStateFromSeed(seed); err != nil {
		return nil, fmt.Errorf("seed store RNG with %d: %w", seed, err)
	}
	return store, nil
}
