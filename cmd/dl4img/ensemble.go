package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/dl4img/dl4img/ensemble"
	"github.com/dl4img/dl4img/jobs"
	"github.com/dl4img/dl4img/store"
)

func init() { extraCommands = append(extraCommands, ensembleCommand()) }

func ensembleCommand() *cli.Command {
	return &cli.Command{
		Name:  "ensemble",
		Usage: "combine finished jobs of one kind into one submission (probabilities averaged, or readings voted per image)",
		Description: "Runs a job of kind ensemble here, like run: it sits in the history, and runs compare shows its\n" +
			"test scores beside its members'. Members must be succeeded jobs of one kind that predicted the same test set.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "jobs", Usage: "the member jobs, `ID,ID,...`"},
			&cli.Int64Flag{Name: "sweep", Usage: "take the members from sweep `ID`: its best succeeded points"},
			&cli.IntFlag{Name: "top", Value: 3, Usage: "with --sweep: how many points (`K`)"},
			&cli.StringFlag{Name: "out", Usage: "`DIR` for the submission (default: the ensemble job's workdir)"},
			&cli.StringFlag{Name: "name", Usage: "a name for the ensemble job"},
		}, workerFlags()...),
		Action: ensembleAction,
	}
}

func ensembleAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("ensemble takes no arguments (give --jobs or --sweep)")
	}
	list, sw := c.String("jobs"), c.Int64("sweep")
	if (list == "") == (sw == 0) {
		return usagef("give the members: --jobs ID,ID,... or --sweep ID [--top K]")
	}
	var ids []int64
	for _, f := range strings.Split(list, ",") {
		if list == "" {
			break
		}
		id, err := strconv.ParseInt(strings.TrimSpace(f), 10, 64)
		if err != nil || id <= 0 {
			return usagef("--jobs %q: %q is not a job ID", list, f)
		}
		ids = append(ids, id)
	}
	root, err := workRoot(c)
	if err != nil {
		return err
	}
	db, err := openDB(c)
	if err != nil {
		return err
	}
	defer db.Close()
	if sw != 0 {
		r, err := loadRanking(c, db, sw)
		if err != nil {
			return err
		}
		for _, p := range r.Points {
			if p.State == store.Succeeded && p.Rank > 0 && len(ids) < c.Int("top") {
				ids = append(ids, p.Job)
			}
		}
	}
	if len(ids) < 2 {
		return usagef("an ensemble needs at least 2 finished jobs, got %d", len(ids))
	}
	var members []ensemble.Member
	kind := ""
	for _, id := range ids {
		j, err := db.Job(c.Context, id)
		if errors.Is(err, store.ErrNotFound) {
			return usageErr(err)
		}
		if err != nil {
			return err
		}
		switch {
		case j.State != store.Succeeded:
			return usagef("job %d is %s: an ensemble combines finished (succeeded) jobs", id, j.State)
		case kind != "" && j.Kind != kind:
			return usagef("jobs %d (%s) and %d (%s) are of different kinds", ids[0], kind, id, j.Kind)
		}
		kind = j.Kind
		for _, m := range members {
			if m.Job == id {
				return usagef("job %d is given twice", id)
			}
		}
		members = append(members, ensemble.Member{Job: id, WorkDir: j.WorkDir, Params: json.RawMessage(j.Params),
			Dir: jobs.Resolve(root, j.WorkDir)})
	}
	k, err := ensemble.Lookup(kind)
	if err != nil {
		return usageErr(err)
	}
	if err := ensemble.CheckTestSets(k, members); err != nil {
		return usageErr(err)
	}
	p := ensemble.Params{Kind: kind, Members: members}
	if out := c.String("out"); out != "" {
		if p.Out, err = filepath.Abs(out); err != nil {
			return usageErr(err)
		}
	}
	config, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if _, err := workDir(c); err != nil {
		return err
	}
	name := c.String("name")
	if name == "" {
		name = fmt.Sprintf("%s ensemble of %s", kind, joinInts(ids))
	}
	id, err := jobs.Submit(c.Context, db, registry(), jobs.Request{Kind: ensemble.KindName, Name: name, Config: config})
	if err != nil {
		return err
	}
	log, _ := logWriter(c)
	fmt.Fprintf(log, "job %d (ensemble of %s jobs %s) submitted to %s\n", id, kind, joinInts(ids), db.Path())
	if _, err := work(c, db, store.Scope{Job: id}, true); err != nil {
		return err
	}
	if err := printScores(c, db, k.ScoreTask(), append([]int64{id}, ids...)); err != nil {
		return err
	}
	return reportJob(c, db, id)
}

// printScores prints the ensemble's test scores (ids[0]) beside its
// members' (the rest), the rows runs compare has for them.
func printScores(c *cli.Context, db *store.DB, task string, ids []int64) error {
	cmp, err := loadComparison(c, db, ids)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	head := []string{"METRIC", fmt.Sprintf("ensemble (job %d)", ids[0])}
	for _, id := range ids[1:] {
		head = append(head, fmt.Sprintf("job %d", id))
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, key := range sortedKeys(cmp.Metrics) {
		vals := cmp.Metrics[key]
		if !strings.HasPrefix(key, task+"/") || vals[0] == nil {
			continue
		}
		row := []string{key}
		for _, m := range vals {
			if m == nil {
				row = append(row, "-")
			} else {
				row = append(row, fmt.Sprintf("%.4g", float64(m.Last)))
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func joinInts(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatInt(id, 10)
	}
	return strings.Join(s, ",")
}
