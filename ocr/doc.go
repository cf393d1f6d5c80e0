// Package ocr holds the captcha and arithmetic-expression readers: a Go
// port of the Python `captcha` library's ImageCaptcha, labels.txt datasets
// with up-front validation, exact expression evaluation with math/big,
// recognition metrics, the competition's submission files, and the job
// kinds captcha-cnn (the book's 4-head CNN), captcha-ctc (the book's CRNN
// with CTC) and arith-ctc (the same reader on 180×60 expressions), each
// planned as data → train → predict → evaluate.
package ocr
