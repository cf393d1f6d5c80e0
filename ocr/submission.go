package ocr

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/dl4img/dl4img/internal/atomicfile"
	"github.com/dl4img/dl4img/ocr/expr"
)

// Submission file names.
const (
	ResultFile      = "result.txt"
	PredictionsFile = "predictions.csv"
)

// NotComputableValue stands in result.txt for the value of a prediction
// expr.Prelim rejects, so every line keeps two fields.
const NotComputableValue = "NaN"

// Prediction is one read test image.
type Prediction struct {
	File       string  // image name, e.g. "17.png"
	Text       string  // decoded text
	Confidence float64 // model's confidence in Text, 0..1
}

// WriteResultTxt writes the competition's result.txt: one line per
// prediction, in the given order (the test images' order), "expression
// value" with the value from expr.Prelim (NotComputableValue when
// it has none). An empty reading is written as NotComputableValue too, so
// the expression field is never missing.
func WriteResultTxt(path string, preds []Prediction) error {
	return atomicfile.Write(path, true, func(w io.Writer) error {
		for i, p := range preds {
			if strings.ContainsAny(p.Text, " \t\r\n") {
				return fmt.Errorf("prediction %d (%s): text %q contains white space", i, p.File, p.Text)
			}
			text := p.Text
			if text == "" {
				text = NotComputableValue
			}
			value, ok := expr.Prelim.Value(p.Text)
			if !ok {
				value = NotComputableValue
			}
			if _, err := fmt.Fprintf(w, "%s %s\n", text, value); err != nil {
				return err
			}
		}
		return nil
	})
}

// WritePredictionsCSV writes predictions.csv with the header
// filename,text,value,confidence; value is empty when the text is not
// computable (always, for plain captchas).
func WritePredictionsCSV(path string, preds []Prediction) error {
	return atomicfile.Write(path, true, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		if err := cw.Write([]string{"filename", "text", "value", "confidence"}); err != nil {
			return err
		}
		for _, p := range preds {
			value, _ := expr.Prelim.Value(p.Text)
			rec := []string{p.File, p.Text, value, strconv.FormatFloat(p.Confidence, 'f', 6, 64)}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	})
}
