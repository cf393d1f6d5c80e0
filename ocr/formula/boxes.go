package formula

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"image"
	"os"
	"strconv"
)

// BoxRow is one line of boxes.csv: the bounding box of line Line (counted
// from 0, top to bottom) of image File.
type BoxRow struct {
	File string
	Line int
	Box  image.Rectangle
}

var boxesHeader = []string{"filename", "line", "x", "y", "w", "h"}

// WriteBoxesCSV writes rows with a header, atomically.
func WriteBoxesCSV(path string, rows []BoxRow) error {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	_ = w.Write(boxesHeader)
	for _, r := range rows {
		_ = w.Write([]string{r.File, strconv.Itoa(r.Line),
			strconv.Itoa(r.Box.Min.X), strconv.Itoa(r.Box.Min.Y), strconv.Itoa(r.Box.Dx()), strconv.Itoa(r.Box.Dy())})
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return writeFileAtomic(path, buf.Bytes())
}

// ReadBoxesCSV reads a file written by WriteBoxesCSV.
func ReadBoxesCSV(path string) ([]BoxRow, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read boxes: %w", err)
	}
	recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(recs) == 0 || fmt.Sprint(recs[0]) != fmt.Sprint(boxesHeader) {
		return nil, fmt.Errorf("read %s: header must be %v", path, boxesHeader)
	}
	rows := make([]BoxRow, 0, len(recs)-1)
	for i, rec := range recs[1:] {
		var v [5]int
		for k := range v {
			v[k], err = strconv.Atoi(rec[k+1])
			if err != nil {
				return nil, fmt.Errorf("%s:%d: column %s: %w", path, i+2, boxesHeader[k+1], err)
			}
		}
		rows = append(rows, BoxRow{File: rec[0], Line: v[0], Box: image.Rect(v[1], v[2], v[1]+v[3], v[2]+v[4])})
	}
	return rows, nil
}
