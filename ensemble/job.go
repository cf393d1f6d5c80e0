package ensemble

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/dl4img/dl4img/tasks"
)

// KindName is the job kind of an ensemble.
const KindName = "ensemble"

// Params of the ensemble kind. `dl4img ensemble` fills them in from the
// store after checking that the members are finished jobs of one kind.
type Params struct {
	Kind    string   `json:"kind" doc:"the members' job kind"`
	Members []Member `json:"members" doc:"the finished jobs to combine (dl4img ensemble fills this in)"`
	Out     string   `json:"out" doc:"where the submission goes (default: the job's workdir)"`
}

// Validate checks the parameters.
func (p *Params) Validate() error {
	if _, err := Lookup(p.Kind); err != nil {
		return fmt.Errorf("parameter kind: %w", err)
	}
	if len(p.Members) < 2 {
		return fmt.Errorf("parameter members: an ensemble needs at least 2 jobs, got %d", len(p.Members))
	}
	seen := map[int64]bool{}
	for _, m := range p.Members {
		if seen[m.Job] {
			return fmt.Errorf("parameter members: job %d is given twice", m.Job)
		}
		seen[m.Job] = true
		if m.WorkDir == "" {
			return fmt.Errorf("parameter members: job %d has no workdir", m.Job)
		}
	}
	return nil
}

// RegisterJob adds the ensemble job kind and its task to r.
func RegisterJob(r *tasks.Registry) {
	r.RegisterJob(tasks.JobKind{
		Name: KindName,
		Doc: "combines finished jobs of one kind into one submission in the kind's format (probabilities averaged, " +
			"readings voted per image); made by dl4img ensemble",
		NewParams: func() any { return &Params{} },
		Plan: func(raw any) ([]tasks.TaskSpec, error) {
			p := raw.(*Params)
			k, err := Lookup(p.Kind)
			if err != nil {
				return nil, err
			}
			return []tasks.TaskSpec{{Name: k.ScoreTask(), Kind: "ensemble.combine"}}, nil
		},
	})
	r.RegisterTask("ensemble.combine", combineTask)
}

func init() { RegisterJob(tasks.Default) }

// report is the ensemble job's ensemble.json.
type report struct {
	Kind    string             `json:"kind"`
	Members []memberScores     `json:"members"`
	Scores  map[string]float64 `json:"scores"`
	Files   []File             `json:"files"`
}

type memberScores struct {
	Job    int64              `json:"job"`
	Scores map[string]float64 `json:"scores"`
}

func combineTask(ctx context.Context, env tasks.Env, raw json.RawMessage) error {
	var p Params
	if err := tasks.Decode(raw, &p); err != nil {
		return err
	}
	if err := p.Validate(); err != nil {
		return err
	}
	k, _ := Lookup(p.Kind)
	// Job directories are the store's "job-N" under the workdir root, the
	// parent of this job's own.
	root := filepath.Dir(env.JobDir())
	for i := range p.Members {
		m := &p.Members[i]
		m.Dir = m.WorkDir
		if !filepath.IsAbs(m.Dir) {
			m.Dir = filepath.Join(root, m.Dir)
		}
	}
	// Checked again here: a member's files may have changed since submit.
	if err := CheckTestSets(k, p.Members); err != nil {
		return err
	}
	out := p.Out
	if out == "" {
		out = env.JobDir()
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("parameter out: %w", err)
	}
	res, err := k.Combine(ctx, p.Members, out)
	if err != nil {
		return err
	}
	if len(res.Files) == 0 {
		return errors.New("the combination wrote no file")
	}
	for _, f := range res.Files {
		if err := env.Artifact(f.Role, f.Path); err != nil {
			return err
		}
	}
	rep := report{Kind: p.Kind, Scores: res.Scores, Files: res.Files}
	for i, m := range p.Members {
		ms := memberScores{Job: m.Job}
		if i < len(res.Members) {
			ms.Scores = res.Members[i]
		}
		rep.Members = append(rep.Members, ms)
		if len(ms.Scores) > 0 {
			env.Logf("member job %d:%s", m.Job, tasks.FormatMetrics(ms.Scores))
		}
	}
	if len(res.Scores) > 0 {
		env.Logf("ensemble of %d:%s", len(p.Members), tasks.FormatMetrics(res.Scores))
		if err := env.Metrics(0, 0, res.Scores); err != nil {
			return err
		}
	} else {
		env.Logf("ensemble of %d: the test set has no labels to score it on", len(p.Members))
	}
	path := filepath.Join(env.Dir(), "ensemble.json")
	if err := tasks.WriteJSONFile(path, rep); err != nil {
		return err
	}
	return env.Artifact("report", path)
}
