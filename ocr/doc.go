// Package ocr holds the model-independent parts of the captcha and
// arithmetic-expression readers: a Go port of the Python `captcha`
// library's ImageCaptcha, labels.txt datasets with up-front validation,
// exact expression evaluation with math/big, recognition metrics and the
// competition's submission files.
package ocr
