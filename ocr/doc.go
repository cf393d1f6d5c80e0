// Package ocr is the preliminary round's job kinds: captcha-cnn (the
// book's 4-head CNN), captcha-ctc (the book's CRNN with CTC) and arith-ctc
// (the same reader on 180×60 expressions, scored on their exact values),
// each planned as data → train → predict → evaluate. It owns what is
// particular to that round: a Go port of the Python `captcha` library's
// ImageCaptcha, labels.txt datasets validated up front, and the
// competition's submission files. The networks, decoding and scores are
// package ocr/reader's; the arithmetic is package ocr/expr's.
package ocr
