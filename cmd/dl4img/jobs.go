package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/dl4img/dl4img/history"
	"github.com/dl4img/dl4img/jobs"
	"github.com/dl4img/dl4img/store"
)

func jobsCommand() *cli.Command {
	return &cli.Command{
		Name:  "jobs",
		Usage: "list, inspect, cancel and retry jobs",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "all jobs, newest first",
				Action: func(c *cli.Context) error {
					db, err := openDB(c)
					if err != nil {
						return err
					}
					defer db.Close()
					js, err := db.Jobs(c.Context)
					if err != nil {
						return err
					}
					tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tKIND\tNAME\tSTATE\tCREATED\tFINISHED")
					for _, j := range js {
						fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", j.ID, j.Kind, j.Name, j.State, j.CreatedAt, dash(j.FinishedAt))
					}
					return tw.Flush()
				},
			},
			{
				Name:      "show",
				Usage:     "a job's tasks, states, attempts, metrics and artifacts",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "machine-readable output"}},
				Action:    showJob,
			},
			{
				Name:      "cancel",
				Usage:     "stop a job: queued tasks now, running ones at their next check",
				ArgsUsage: "ID",
				Action: func(c *cli.Context) error {
					return jobAction(c, func(db *store.DB, id int64) error {
						if err := db.CancelJob(c.Context, id); err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "job %d: cancel requested\n", id)
						return nil
					})
				},
			},
			{
				Name: "retry",
				Usage: "put a job's failed and cancelled tasks back in the queue (done tasks are kept; training resumes " +
					"from its last finite checkpoint), with --set to change parameters first (recorded in the history)",
				ArgsUsage: "ID",
				Flags:     []cli.Flag{&cli.StringSliceFlag{Name: "set", Usage: "parameter `key=value` to change (repeatable)"}},
				Action: func(c *cli.Context) error {
					return jobAction(c, func(db *store.DB, id int64) error {
						n, changes, err := jobs.Retry(c.Context, db, registry(), id, c.StringSlice("set"))
						if err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "job %d: %d task(s) queued again%s; run `dl4img worker --drain` to run them\n",
							id, n, prefixed(" with ", history.DescribeChanges(changes)))
						return nil
					})
				},
			},
		},
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// jobIDs parses the positional job ids.
func jobIDs(c *cli.Context, min int) ([]int64, error) {
	if c.NArg() < min {
		return nil, usagef("want at least %d job ID(s)", min)
	}
	var ids []int64
	for _, a := range c.Args().Slice() {
		id, err := strconv.ParseInt(a, 10, 64)
		if err != nil || id <= 0 {
			return nil, usagef("job ID %q: not a positive integer", a)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func jobAction(c *cli.Context, fn func(db *store.DB, id int64) error) error {
	ids, err := jobIDs(c, 1)
	if err != nil {
		return err
	}
	db, err := openDB(c)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, id := range ids {
		if err := fn(db, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return usageErr(err)
			}
			return err
		}
	}
	return nil
}

type jobView struct {
	Job       store.Job         `json:"job"`
	Params    json.RawMessage   `json:"params"`
	Tasks     []store.Task      `json:"tasks"`
	Metrics   []history.Summary `json:"metrics"`
	Artifacts []store.Artifact  `json:"artifacts"`
	Retries   []history.Retry   `json:"retries"`
}

func loadJobView(c *cli.Context, db *store.DB, id int64) (*jobView, error) {
	j, err := db.Job(c.Context, id)
	if err != nil {
		return nil, err
	}
	ts, err := db.Tasks(c.Context, id)
	if err != nil {
		return nil, err
	}
	ms, err := db.JobMetrics(c.Context, id)
	if err != nil {
		return nil, err
	}
	as, err := db.JobArtifacts(c.Context, id)
	if err != nil {
		return nil, err
	}
	rs, err := db.JobRetries(c.Context, id)
	if err != nil {
		return nil, err
	}
	v := &jobView{Job: *j, Params: json.RawMessage(j.Params), Tasks: ts, Metrics: history.Summarize(ms), Artifacts: as,
		Retries: history.Retries(rs)}
	return v, nil
}

func showJob(c *cli.Context) error {
	return jobAction(c, func(db *store.DB, id int64) error {
		v, err := loadJobView(c, db, id)
		if err != nil {
			return err
		}
		if c.Bool("json") {
			enc := json.NewEncoder(c.App.Writer)
			enc.SetIndent("", "  ")
			return enc.Encode(v)
		}
		root, err := workRoot(c)
		if err != nil {
			return err
		}
		printJob(c.App.Writer, v, root)
		return nil
	})
}

// printJob prints a job for people; root resolves its directory (which the
// store records relative to the workdir root).
func printJob(w io.Writer, v *jobView, root string) {
	j := v.Job
	fmt.Fprintf(w, "job %d  kind %s  name %s  state %s\n", j.ID, j.Kind, j.Name, j.State)
	fmt.Fprintf(w, "created %s  finished %s  workdir %s\n", j.CreatedAt, dash(j.FinishedAt), jobs.Resolve(root, j.WorkDir))
	fmt.Fprintf(w, "params %s\n\n", j.Params)
	names := store.TaskNames(v.Tasks)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TASK\tKIND\tSTATE\tATTEMPT\tAFTER\tBACKEND\tWORKERS\tPROGRESS\tSTARTED\tFINISHED\tERROR")
	for _, t := range v.Tasks {
		prog := "-"
		if t.ProgressTotal > 0 {
			prog = fmt.Sprintf("%s %d/%d", t.ProgressLabel, t.ProgressDone, t.ProgressTotal)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Kind, t.State, t.Attempt, t.MaxAttempts,
			dash(store.DepNames(t, names)), dash(t.Backend), dash(strings.ReplaceAll(t.Workers, " ", ",")), prog,
			dash(t.StartedAt), dash(t.FinishedAt), dash(t.Error))
	}
	tw.Flush()
	for _, r := range v.Retries {
		fmt.Fprintf(w, "retried %s: %s queued again%s\n", r.At, strings.Join(r.Tasks, ", "), prefixed("; ", r.Describe()))
	}
	if len(v.Metrics) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TASK\tMETRIC\tLAST\tBEST\tEPOCH\tSTEP\tPOINTS")
		for _, m := range v.Metrics {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\n", m.Task, m.Name, history.Format(float64(m.Last), 6),
				history.Format(float64(m.Best), 6), m.Epoch, m.Step, m.Count)
		}
		tw.Flush()
	}
	if len(v.Artifacts) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TASK\tROLE\tBYTES\tSHA256\tPATH")
		for _, a := range v.Artifacts {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.12s\t%s\n", a.Task, a.Role, a.Bytes, a.SHA256, a.Path)
		}
		tw.Flush()
	}
}

// sortedKeys returns a map's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// prefixed is s after prefix, or "" when s is.
func prefixed(prefix, s string) string {
	if s == "" {
		return ""
	}
	return prefix + s
}
