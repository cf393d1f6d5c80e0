package formula

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/dl4img/dl4img/ensemble"
	"github.com/dl4img/dl4img/ocr/formula/lines"
)

// jobEnsemble votes finished formula jobs per image with the rule of the
// kind's own ensemble=N (vote), reading what their predict and data tasks
// wrote: predictions.csv and the test manifest.
type jobEnsemble struct{}

func init() { ensemble.Register(KindFormula, jobEnsemble{}) }

func (jobEnsemble) ScoreTask() string { return "evaluate" }

func memberParams(m ensemble.Member) (*JobParams, error) {
	p := jobDefaults().(*JobParams)
	if err := json.Unmarshal(m.Params, p); err != nil {
		return nil, fmt.Errorf("parameters: %w", err)
	}
	return p, nil
}

// testManifest reads a member's test manifest: one example per test image
// in prediction order (crops not loaded) and its line count.
func testManifest(m ensemble.Member) ([]*example, []int, error) {
	path := filepath.Join(m.Dir, "lines", splitTest+".tsv")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("test manifest (its data task's): %w", err)
	}
	var out []*example
	var lineCounts []int
	for ln, line := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		f := strings.Split(line, "\t")
		n, err := strconv.Atoi(f[min(1, len(f)-1)])
		if len(f) != 4 || err != nil {
			return nil, nil, fmt.Errorf("%s:%d: want 4 tab-separated fields (name, lines, text, value)", path, ln+1)
		}
		out, lineCounts = append(out, &example{Name: f[0], Text: f[2], Value: f[3]}), append(lineCounts, n)
	}
	return out, lineCounts, nil
}

func (jobEnsemble) TestSet(m ensemble.Member) (ensemble.TestSet, error) {
	p, err := memberParams(m)
	if err != nil {
		return ensemble.TestSet{}, err
	}
	xs, _, err := testManifest(m)
	if err != nil {
		return ensemble.TestSet{}, err
	}
	dir := p.TestDir
	if dir == "" {
		dir = filepath.Join(m.Dir, "images", splitTest)
	}
	file := map[string]string{}
	if paths, err := lines.ExpandInputs([]string{dir}); err == nil {
		for _, path := range paths {
			file[strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))] = path
		}
	}
	d := ensemble.NewDigest()
	for _, x := range xs {
		if err := d.Add(x.Name, x.Text, file[x.Name]); err != nil {
			return ensemble.TestSet{}, err
		}
	}
	ts := d.TestSet(dir)
	ts.Predictions = predictionsFile(p, m)
	return ts, nil
}

// predictionsFile is where a member's predict task wrote predictions.csv.
func predictionsFile(p *JobParams, m ensemble.Member) string {
	return filepath.Join(m.OutDir(p.Out), "predictions.csv")
}

// memberReadings reads a member's predictions.csv: per image its text and,
// as confidence, the summed confidence of its readers that read that text
// over their number (what vote gives the winner).
func memberReadings(m ensemble.Member, n int) ([]ensemble.Reading, error) {
	p, err := memberParams(m)
	if err != nil {
		return nil, err
	}
	path := predictionsFile(p, m)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("test predictions (its predict task's): %w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(rows) != n+1 || len(rows[0]) < 6 || (len(rows[0])-4)%2 != 0 {
		return nil, fmt.Errorf("%s: want a header and %d rows of filename,text,value,lines,reader1,conf1,...", path, n)
	}
	readers := (len(rows[0]) - 4) / 2
	rs := make([]ensemble.Reading, n)
	for i, row := range rows[1:] {
		rs[i].Text = row[1]
		for k := range readers {
			if row[4+2*k] != row[1] {
				continue
			}
			c, err := strconv.ParseFloat(row[5+2*k], 64)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: confidence %q", path, i+2, row[5+2*k])
			}
			rs[i].Conf += c / float64(readers)
		}
	}
	return rs, nil
}

func (jobEnsemble) Combine(ctx context.Context, ms []ensemble.Member, out string) (*ensemble.Result, error) {
	xs, lineCounts, err := testManifest(ms[0])
	if err != nil {
		return nil, err
	}
	per := make([][]ensemble.Reading, len(ms))
	for i, m := range ms {
		if per[i], err = memberReadings(m, len(xs)); err != nil {
			return nil, fmt.Errorf("job %d: %w", m.Job, err)
		}
	}
	voted := ensemble.Vote(per)
	texts := make([]string, len(voted))
	names := make([]string, len(xs))
	for i, r := range voted {
		texts[i], names[i] = r.Text, xs[i].Name
	}
	// The job's own format, the members in --jobs order as its readers.
	result, predPath, err := writeSubmission(out, names, lineCounts, texts, per)
	if err != nil {
		return nil, err
	}
	res := &ensemble.Result{Files: []ensemble.File{{Role: "submission", Path: result}, {Role: "predictions", Path: predPath}}}
	// Scored as the members' evaluate tasks score their labeled test images.
	var idx []int
	var labeled []*example
	for i, x := range xs {
		if x.Text != "" {
			idx, labeled = append(idx, i), append(labeled, x)
		}
	}
	if len(labeled) == 0 {
		return res, nil
	}
	score := func(rs []ensemble.Reading) (map[string]float64, error) {
		ts := make([]string, len(idx))
		for k, i := range idx {
			ts[k] = rs[i].Text
		}
		s, err := scoreTexts(labeled, ts)
		return map[string]float64{"test_seq_acc": s.SeqAcc, "test_char_acc": s.CharAcc, "test_value_acc": s.ValueAcc,
			"test_computable": s.Computable}, err
	}
	if res.Scores, err = score(voted); err != nil {
		return nil, err
	}
	for _, rs := range per {
		m, err := score(rs)
		if err != nil {
			return nil, err
		}
		res.Members = append(res.Members, m)
	}
	return res, nil
}
