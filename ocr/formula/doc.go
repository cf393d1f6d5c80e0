// Package formula implements the final-round formula task: a generator of
// images holding one or two assignments and an expression (with exact
// labels and ground-truth line boxes), the exact evaluator for such
// formulas, a pure-Go line extractor that finds the 2–3 lines with classic
// image processing and joins their crops into one fixed-height strip, and
// the `formula` job kind: extraction → CRNN + CTC reader (optionally an
// ensemble voting per image) → result.txt.
package formula
