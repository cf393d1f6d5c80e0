// Package formula implements the model-independent parts of the final-round
// formula task: a generator of images holding one or two assignments and an
// expression (with exact labels and ground-truth line boxes), the exact
// evaluator for such formulas, and a pure-Go line extractor that finds the
// 2–3 lines with classic image processing and joins their crops into one
// fixed-height strip for a CTC reader.
package formula
