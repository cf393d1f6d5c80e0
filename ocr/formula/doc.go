// Package formula is the final round's job kind, `formula`: generated
// (package synth) or given images → line crops (package lines), each
// image's crops joined into a strip → the CRNN + CTC reader of package
// ocr/reader (optionally an ensemble of readers voting per image) →
// result.txt with each formula's exact value (package ocr/expr).
package formula
