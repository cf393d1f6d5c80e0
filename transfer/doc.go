// Package transfer is the `transfer` job kind: image classification (Kaggle's
// Dogs vs. Cats and any train/<class>/ folder) by transfer learning.
// Pretrained CNNs are imported from ONNX files, cut at their global-average
// pooled features; the features are extracted once into a cache keyed by
// (backbone file hash, image file hash); a small head (dropout + dense,
// sigmoid for two classes, softmax for more) is trained on them; optionally
// the last backbone layers are fine-tuned; class activation maps are drawn
// for a few images; the test set is written as a Kaggle submission.
//
// dl4img never downloads weights: a backbone is an ONNX file the user
// exported (see README.md). Without one, the job can train a small CNN from
// scratch (backbone=scratch), recorded as such.
package transfer

import "github.com/gomlx/compute/dtypes"

const tensorsDType = dtypes.Float32
