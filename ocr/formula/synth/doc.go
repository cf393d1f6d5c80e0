// Package synth generates the final round's images: one or two
// assignments and an expression ("流=42072;圳=86;(圳-(97510*45921))*流/35864")
// drawn line by line in a CJK and a digit font on a noisy background with
// noise lines, each with its exact label (labels.txt: text and value) and
// its lines' ink boxes (boxes.csv), and the alphabet such formulas are
// written in (Charset).
package synth
