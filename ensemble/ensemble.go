// Package ensemble combines finished jobs of one kind into one submission
// in the kind's own format: probabilities averaged (transfer, segment),
// readings voted per image (the ocr kinds, formula). Each kind registers
// how to read its members' test predictions and write the combination
// (Register, from the kind's package); this package holds the rules and
// the `ensemble` job kind that runs them, so that an ensemble is a job in
// the history like any other.
package ensemble

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"sort"
)

// Member is one finished job an ensemble combines.
type Member struct {
	Job int64 `json:"job"`
	// WorkDir is the job's directory as the store records it (relative
	// to the workdir root, like "job-7").
	WorkDir string          `json:"workdir"`
	Params  json.RawMessage `json:"params"` // its resolved parameters
	// Dir is WorkDir on this machine (set before a Kind sees the member).
	Dir string `json:"-"`
}

// OutDir is where a member wrote its submission: its out parameter, or
// else its job directory (the kinds' rule).
func (m Member) OutDir(out string) string {
	if out == "" {
		return m.Dir
	}
	return out
}

// TestSet identifies the test set a member predicted: equal Digests for
// the same images (names, contents and order; labels where known).
type TestSet struct {
	Digest string
	Images int
	Where  string // for messages: the folder or file it was read from
	// Predictions is the file (or folder) the member's predictions are
	// read from: two members may not share one (the same out parameter).
	Predictions string
}

// Kind is what an ensemble needs of a job kind.
type Kind interface {
	// ScoreTask names the task under which the kind records its test
	// scores; the ensemble's one task takes that name, so that runs
	// compare lines its scores up with its members'.
	ScoreTask() string
	// TestSet reads which test set a finished member predicted.
	TestSet(m Member) (TestSet, error)
	// Combine reads the members' test predictions, combines them and
	// writes the kind's submission files into out.
	Combine(ctx context.Context, ms []Member, out string) (*Result, error)
}

// Result is what Combine wrote and scored.
type Result struct {
	// Files are the written files by role ("submission" first), recorded
	// as the ensemble job's artifacts.
	Files []File
	// Scores are the ensemble's scores on the test set's labels, named as
	// the members' are ("test_seq_acc"); empty without labels.
	Scores map[string]float64
	// Members are each member's scores on the same labels by the same
	// code, in member order.
	Members []map[string]float64
}

// File is a written file and its role.
type File struct{ Role, Path string }

// kinds is the registry of kinds that can be ensembled, filled from the
// kind packages' init functions.
var kinds = map[string]Kind{}

// Register makes jobs of kind combinable; kind packages call it from init.
func Register(kind string, k Kind) {
	if _, dup := kinds[kind]; dup {
		panic("ensemble: kind registered twice: " + kind)
	}
	kinds[kind] = k
}

// Lookup returns the ensemble support of a job kind.
func Lookup(kind string) (Kind, error) {
	k, ok := kinds[kind]
	if !ok {
		names := make([]string, 0, len(kinds))
		for n := range kinds {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, fmt.Errorf("jobs of kind %s cannot be ensembled (kinds that can: %v)", kind, names)
	}
	return k, nil
}

// CheckTestSets refuses members that predicted different test sets, with
// one line naming two of them.
func CheckTestSets(k Kind, ms []Member) error {
	var first TestSet
	source := map[string]int64{}
	for i, m := range ms {
		ts, err := k.TestSet(m)
		if err != nil {
			return fmt.Errorf("job %d: %w", m.Job, err)
		}
		if j, dup := source[ts.Predictions]; dup && ts.Predictions != "" {
			return fmt.Errorf("jobs %d and %d wrote their predictions to the same %s (the same out), so one overwrote the other's",
				j, m.Job, ts.Predictions)
		}
		source[ts.Predictions] = m.Job
		if i == 0 {
			first = ts
			continue
		}
		if ts.Digest != first.Digest {
			return fmt.Errorf("jobs %d and %d predicted different test sets (%d images in %s, %d in %s)",
				ms[0].Job, m.Job, first.Images, first.Where, ts.Images, ts.Where)
		}
	}
	return nil
}

// Reading is one member's answer for one image: a text and the model's
// confidence in it.
type Reading struct {
	Text string  `json:"text"`
	Conf float64 `json:"confidence"`
}

// Vote picks each image's answer from the members' readings (per[m][i] is
// member m's reading of image i): the text most members read; a tie goes
// to the text with the higher summed confidence, then to the smaller text
// (so the result never depends on map order). The winner's confidence is
// its summed confidence over the number of members.
func Vote(per [][]Reading) []Reading {
	if len(per) == 0 {
		return nil
	}
	out := make([]Reading, len(per[0]))
	for i := range out {
		count := map[string]int{}
		conf := map[string]float64{}
		for _, rs := range per {
			count[rs[i].Text]++
			conf[rs[i].Text] += rs[i].Conf
		}
		best := per[0][i].Text
		for t := range count {
			if count[t] > count[best] || count[t] == count[best] && (conf[t] > conf[best] || conf[t] == conf[best] && t < best) {
				best = t
			}
		}
		out[i] = Reading{Text: best, Conf: conf[best] / float64(len(per))}
	}
	return out
}

// Mean averages probability vectors element by element, skipping nil ones
// (a member without a prediction for the item); nil when all are.
func Mean(vs [][]float64) []float64 {
	var sum []float64
	n := 0
	for _, v := range vs {
		if v == nil {
			continue
		}
		if sum == nil {
			sum = make([]float64, len(v))
		}
		for k := range sum {
			sum[k] += v[k]
		}
		n++
	}
	for k := range sum {
		sum[k] /= float64(n)
	}
	return sum
}

// FileDigest is the sha256 of a file's contents; past 64 MiB (whole
// slides) of its size and first and last 4 MiB, which tells different
// files apart without reading gigabytes.
func FileDigest(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	const big, part = 64 << 20, 4 << 20
	if st.Size() <= big {
		if _, err := io.Copy(h, f); err != nil {
			return "", fmt.Errorf("%s: %w", path, err)
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	fmt.Fprintf(h, "%d\n", st.Size())
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, part)); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if _, err := io.Copy(h, io.NewSectionReader(f, st.Size()-part, part)); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Digest accumulates a test set's identity: add each image's name, label
// and file in order.
type Digest struct {
	h hash.Hash
	n int
}

// NewDigest starts a test set's digest.
func NewDigest() *Digest { return &Digest{h: sha256.New()} }

// Add adds one image: its name, its label ("" when unknown) and the
// digest of its file (none for path "", e.g. a skipped bad image, or for
// a file this machine does not have: then names and labels decide).
func (d *Digest) Add(name, label, path string) error {
	sum := ""
	if path != "" {
		var err error
		if sum, err = FileDigest(path); errors.Is(err, fs.ErrNotExist) {
			sum = ""
		} else if err != nil {
			return err
		}
	}
	fmt.Fprintf(d.h, "%q %q %s\n", name, label, sum)
	d.n++
	return nil
}

// TestSet is the digest so far, with where it was read from.
func (d *Digest) TestSet(where string) TestSet {
	return TestSet{Digest: hex.EncodeToString(d.h.Sum(nil)), Images: d.n, Where: where}
}
