package ensemble

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestVote(t *testing.T) {
	r := func(s string, c float64) Reading { return Reading{Text: s, Conf: c} }
	per := [][]Reading{
		{r("12", 0.9), r("ab", 0.2), r("x", 0.5), r("p", 0.4)},
		{r("17", 0.8), r("ac", 0.9), r("y", 0.5), r("q", 0.4)},
		{r("17", 0.1), r("ad", 0.3), r("x", 0.1), r("p", 0.4)},
	}
	got := Vote(per)
	want := []Reading{
		r("17", 0.9/3), // majority over the most confident single reader
		r("ac", 0.9/3), // a three-way tie: the most confident
		r("x", 0.6/3),  // 2 to 1
		r("p", 0.8/3),
	}
	for i := range want {
		if got[i].Text != want[i].Text || math.Abs(got[i].Conf-want[i].Conf) > 1e-12 {
			t.Fatalf("vote %v, want %v", got, want)
		}
	}
	// Equal counts and confidences: the smaller text, whatever the order.
	tie := [][]Reading{{r("b", 0.5)}, {r("a", 0.5)}}
	if v := Vote(tie); v[0].Text != "a" {
		t.Fatalf("tie went to %q", v[0].Text)
	}
	if Vote(nil) != nil {
		t.Fatal("vote of nothing")
	}
}

func TestMean(t *testing.T) {
	got := Mean([][]float64{{0.2, 0.8}, nil, {0.6, 0.4}})
	if len(got) != 2 || math.Abs(got[0]-0.4) > 1e-12 || math.Abs(got[1]-0.6) > 1e-12 {
		t.Fatalf("mean %v", got)
	}
	if Mean([][]float64{nil, nil}) != nil {
		t.Fatal("mean of no predictions")
	}
}

func TestDigests(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := write("a.png", "aaa"), write("b.png", "bbb")
	digest := func(names, labels, paths []string) string {
		d := NewDigest()
		for i := range names {
			if err := d.Add(names[i], labels[i], paths[i]); err != nil {
				t.Fatal(err)
			}
		}
		return d.TestSet(dir).Digest
	}
	base := digest([]string{"a", "b"}, []string{"1", "2"}, []string{a, b})
	for name, other := range map[string]string{
		"order":   digest([]string{"b", "a"}, []string{"2", "1"}, []string{b, a}),
		"labels":  digest([]string{"a", "b"}, []string{"1", "3"}, []string{a, b}),
		"content": digest([]string{"a", "b"}, []string{"1", "2"}, []string{a, a}),
		"fewer":   digest([]string{"a"}, []string{"1"}, []string{a}),
	} {
		if other == base {
			t.Errorf("another %s gives the same digest", name)
		}
	}
	if digest([]string{"a", "b"}, []string{"1", "2"}, []string{a, b}) != base {
		t.Error("the same images give another digest")
	}
	// Past 64 MiB only the size and the ends are read: a change at the
	// end shows, a file of another size shows.
	big := filepath.Join(dir, "slide.tif")
	f, _ := os.Create(big)
	f.Truncate(70 << 20)
	f.Close()
	d1, err := FileDigest(big)
	if err != nil {
		t.Fatal(err)
	}
	f, _ = os.OpenFile(big, os.O_WRONLY, 0)
	f.WriteAt([]byte("x"), 70<<20-10)
	f.Close()
	d2, _ := FileDigest(big)
	os.Truncate(big, 71<<20)
	d3, _ := FileDigest(big)
	if d1 == d2 || d2 == d3 || d1 == d3 {
		t.Errorf("big file digests %s %s %s", d1, d2, d3)
	}
}

// fakeKind reports a test set per member and combines nothing.
type fakeKind map[int64]TestSet

func (fakeKind) ScoreTask() string { return "evaluate" }
func (k fakeKind) TestSet(m Member) (TestSet, error) {
	ts, ok := k[m.Job]
	if !ok {
		return TestSet{}, errors.New("no predictions")
	}
	return ts, nil
}
func (fakeKind) Combine(context.Context, []Member, string) (*Result, error) { return &Result{}, nil }

func TestCheckTestSets(t *testing.T) {
	k := fakeKind{1: {"x", 10, "/a", "1"}, 2: {"x", 10, "/b", "2"}, 3: {"y", 12, "/c", "3"}}
	if err := CheckTestSets(k, []Member{{Job: 1}, {Job: 2}}); err != nil {
		t.Fatal(err)
	}
	err := CheckTestSets(k, []Member{{Job: 1}, {Job: 2}, {Job: 3}})
	if err == nil || err.Error() != "jobs 1 and 3 predicted different test sets (10 images in /a, 12 in /c)" {
		t.Fatalf("different test sets: %v", err)
	}
	if err := CheckTestSets(k, []Member{{Job: 1}, {Job: 4}}); err == nil || !strings.HasPrefix(err.Error(), "job 4: no predictions") {
		t.Fatalf("member without predictions: %v", err)
	}
	k[1], k[2] = TestSet{"x", 10, "/a", "/out/p.csv"}, TestSet{"x", 10, "/a", "/out/p.csv"}
	if err := CheckTestSets(k, []Member{{Job: 1}, {Job: 2}}); err == nil || !strings.Contains(err.Error(), "jobs 1 and 2 wrote their predictions to the same /out/p.csv") {
		t.Fatalf("shared predictions file: %v", err)
	}
}

func TestParamsValidate(t *testing.T) {
	Register("fake-kind", fakeKind{})
	for _, c := range []struct {
		p    Params
		want string
	}{
		{Params{Kind: "nope", Members: []Member{{Job: 1, WorkDir: "job-1"}, {Job: 2, WorkDir: "job-2"}}}, "kinds that can"},
		{Params{Kind: "fake-kind", Members: []Member{{Job: 1, WorkDir: "job-1"}}}, "at least 2 jobs"},
		{Params{Kind: "fake-kind", Members: []Member{{Job: 1, WorkDir: "job-1"}, {Job: 1, WorkDir: "job-1"}}}, "job 1 is given twice"},
		{Params{Kind: "fake-kind", Members: []Member{{Job: 1, WorkDir: "job-1"}, {Job: 2}}}, "job 2 has no workdir"},
	} {
		if err := c.p.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.p, err, c.want)
		}
	}
}
