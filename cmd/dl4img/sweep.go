package main

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dl4img/dl4img/history"
	"github.com/dl4img/dl4img/jobs"
	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/sweep"
)

func init() { extraCommands = append(extraCommands, sweepCommand()) }

func sweepCommand() *cli.Command {
	flags := append([]cli.Flag{&cli.StringFlag{Name: "name", Usage: "a name for the sweep (default: the kind); its jobs are NAME/1, NAME/2, ..."}},
		submitFlags()[1:]...) // --set, --config
	flags = append(flags,
		&cli.StringSliceFlag{Name: "grid", Usage: "swept parameter `key=v1,v2,...` (repeatable; the points are the cross product)"},
		&cli.IntFlag{Name: "random", Usage: "`N` random draws from the --space parameters (per grid combination)"},
		&cli.StringSliceFlag{Name: "space", Usage: "random parameter `key=DIST`: uniform(a,b), loguniform(a,b), int(a,b) or choice(x,y,...) (repeatable)"},
		&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the random draws (the same seed draws the same points)"},
		&cli.StringFlag{Name: "prune", Usage: "stop weak points early: asha (asynchronous successive halving) or median (Optuna's median rule)"},
		&cli.IntFlag{Name: "prune-min-epochs", Value: 1, Usage: "asha: the first rung (epochs); median: no pruning before this epoch"},
		&cli.IntFlag{Name: "prune-factor", Value: 3, Usage: "asha: rungs at min·factor^k epochs keep the top 1/factor"},
		&cli.IntFlag{Name: "prune-startup", Value: 5, Usage: "median: points that must finish before any is pruned"},
		&cli.BoolFlag{Name: "run", Usage: "also run the points here until none is left (like run), then print the ranking"},
	)
	return &cli.Command{
		Name:      "sweep",
		Usage:     "queue a grid or random search over a kind's parameters, one job per point, weak points pruned early if asked",
		ArgsUsage: "KIND",
		Description: "Every point is validated before anything is queued. Workers anywhere run the points as ordinary jobs;\n" +
			"`dl4img sweep show ID` ranks them by the kind's headline metric.",
		Flags:  append(flags, workerFlags()...),
		Action: sweepAction,
		Subcommands: []*cli.Command{
			{
				Name:      "show",
				Usage:     "a sweep's points ranked by the headline metric, with the swept parameters, state and time",
				ArgsUsage: "ID",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "machine-readable output"},
					&cli.BoolFlag{Name: "csv", Usage: "CSV output"},
				},
				Action: showSweep,
			},
			{
				Name:   "list",
				Usage:  "all sweeps, newest first",
				Action: listSweeps,
			},
		},
	}
}

func sweepAction(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("want exactly one job KIND (see dl4img kinds), or sweep show ID, or sweep list")
	}
	reg := registry()
	kind, err := reg.Job(c.Args().First())
	if err != nil {
		return usageErr(err)
	}
	if kind.Headline == "" {
		return usagef("kind %s has no headline metric to rank the points by", kind.Name)
	}
	spec := sweep.Spec{Random: c.Int("random"), Seed: c.Uint64("seed"), Set: c.StringSlice("set"), Config: c.String("config")}
	for _, g := range c.StringSlice("grid") {
		p, err := sweep.ParseGrid(g)
		if err != nil {
			return usageErr(err)
		}
		spec.Grid = append(spec.Grid, p)
	}
	for _, s := range c.StringSlice("space") {
		p, err := sweep.ParseSpace(s)
		if err != nil {
			return usageErr(err)
		}
		spec.Space = append(spec.Space, p)
	}
	known := map[string]bool{}
	for _, p := range kind.Params() {
		known[p.Name] = true
	}
	fixed := map[string]bool{}
	for _, s := range spec.Set {
		k, _, _ := strings.Cut(s, "=")
		fixed[strings.TrimSpace(k)] = true
	}
	for _, p := range spec.Params() {
		switch {
		case !known[p.Name]:
			return usagef("--%s %s: kind %s has no parameter %q (see dl4img kinds)", flagOf(p), p.Name, kind.Name, p.Name)
		case fixed[p.Name]:
			return usagef("parameter %s is both --set and swept", p.Name)
		}
	}
	points, err := sweep.Points(spec.Grid, spec.Space, spec.Random, spec.Seed)
	if err != nil {
		return usageErr(err)
	}
	var rule string
	if name := c.String("prune"); name != "" {
		r := sweep.Rule{Name: name, MinEpochs: c.Int("prune-min-epochs"), Factor: c.Int("prune-factor"), Startup: c.Int("prune-startup")}
		if name == sweep.ASHA {
			r.Startup = 0
		} else {
			r.Factor = 0
		}
		if err := r.Validate(); err != nil {
			return usageErr(err)
		}
		b, _ := json.Marshal(r)
		rule = string(b)
	}
	config, err := readConfig(c)
	if err != nil {
		return err
	}
	name := c.String("name")
	if name == "" {
		name = kind.Name
	}
	// Every point is planned (and so validated) before any is stored.
	ns := store.NewSweep{Kind: kind.Name, Name: name, Metric: kind.Headline, Lower: history.LowerIsBetter(kind.Headline), Prune: rule}
	for i, pt := range points {
		job, err := jobs.Prepare(reg, jobs.Request{Kind: kind.Name, Name: fmt.Sprintf("%s/%d", name, i+1), Config: config,
			Sets: append(append([]string(nil), spec.Set...), pt.Sets()...)})
		if err != nil {
			return fmt.Errorf("point %d of %d (%s): %w", i+1, len(points), pt, err)
		}
		values, err := sweptValues(job.Params, pt)
		if err != nil {
			return err
		}
		ns.Points = append(ns.Points, store.NewPoint{Params: values, Job: job})
	}
	b, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	ns.Spec = string(b)
	if _, err := workDir(c); err != nil {
		return err
	}
	db, err := openDB(c)
	if err != nil {
		return err
	}
	defer db.Close()
	id, ids, err := db.CreateSweep(c.Context, ns)
	if err != nil {
		return err
	}
	log, _ := logWriter(c)
	fmt.Fprintf(log, "sweep %d (%s, %s): %d points queued as jobs %d-%d in %s\n", id, kind.Name, name, len(ids), ids[0], ids[len(ids)-1], db.Path())
	for i, pt := range points {
		fmt.Fprintf(log, "  point %d  job %d  %s\n", i+1, ids[i], pt)
	}
	if !c.Bool("run") {
		fmt.Fprintln(c.App.Writer, id)
		return nil
	}
	if _, err := work(c, db, store.Scope{Sweep: id}, true); err != nil {
		return err
	}
	r, err := loadRanking(c, db, id)
	if err != nil {
		return err
	}
	if err := printRanking(c.App.Writer, r); err != nil {
		return err
	}
	failed := 0
	for _, p := range r.Points {
		if p.State == store.Failed {
			failed++
		}
	}
	if failed > 0 {
		return withCode(exitFailed, fmt.Errorf("sweep %d: %d of %d points failed (see dl4img sweep show %d)", id, failed, len(r.Points), id))
	}
	return nil
}

func flagOf(p sweep.Param) string {
	if p.Dist == sweep.Grid {
		return "grid"
	}
	return "space"
}

// sweptValues picks the swept parameters' values out of a job's resolved
// parameters, typed as the kind reads them (numbers stay numbers).
func sweptValues(params string, pt sweep.Point) (string, error) {
	var all map[string]json.RawMessage
	if err := json.Unmarshal([]byte(params), &all); err != nil {
		return "", err
	}
	out := map[string]json.RawMessage{}
	for _, v := range pt {
		out[v.Name] = all[v.Name]
	}
	b, err := json.Marshal(out)
	return string(b), err
}

// sweepID parses the one positional sweep id.
func sweepID(c *cli.Context) (int64, error) {
	if c.NArg() != 1 {
		return 0, usagef("want one sweep ID")
	}
	id, err := strconv.ParseInt(c.Args().First(), 10, 64)
	if err != nil || id <= 0 {
		return 0, usagef("sweep ID %q: not a positive integer", c.Args().First())
	}
	return id, nil
}

func loadRanking(c *cli.Context, db *store.DB, id int64) (*history.Ranking, error) {
	s, err := db.Sweep(c.Context, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, usageErr(err)
	}
	if err != nil {
		return nil, err
	}
	pts, err := db.SweepPoints(c.Context, id)
	if err != nil {
		return nil, err
	}
	return history.RankSweep(*s, pts, time.Now())
}

func showSweep(c *cli.Context) error {
	id, err := sweepID(c)
	if err != nil {
		return err
	}
	db, err := openDB(c)
	if err != nil {
		return err
	}
	defer db.Close()
	r, err := loadRanking(c, db, id)
	if err != nil {
		return err
	}
	switch {
	case c.Bool("json"):
		enc := json.NewEncoder(c.App.Writer)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case c.Bool("csv"):
		return writeRankingCSV(c.App.Writer, r)
	}
	return printRanking(c.App.Writer, r)
}

// pointRow is a ranked point's cells after rank, point, job and state:
// the swept values, the metric, epochs, pruned-at epoch and time.
func pointRow(r *history.Ranking, p history.SweepPoint, seconds func(float64) string) []string {
	var row []string
	for _, s := range r.Swept {
		row = append(row, history.RawString(p.Params[s.Name]))
	}
	best, pruned := "", ""
	if p.Best != nil {
		best = strconv.FormatFloat(float64(*p.Best), 'g', 6, 64)
	}
	if p.PrunedAt > 0 {
		pruned = strconv.Itoa(p.PrunedAt)
	}
	return append(row, best, strconv.Itoa(p.Epochs), pruned, seconds(p.DurationS))
}

func printRanking(w io.Writer, r *history.Ranking) error {
	s := r.Sweep
	dir := "higher"
	if s.Lower {
		dir = "lower"
	}
	prune := "none"
	if rule := r.Rule; rule != nil {
		prune = rule.Name
		if rule.Name == sweep.ASHA {
			prune += fmt.Sprintf(" (rungs at %d·%d^k epochs)", rule.MinEpochs, rule.Factor)
		} else {
			prune += fmt.Sprintf(" (from epoch %d, after %d finished points)", rule.MinEpochs, rule.Startup)
		}
	}
	fmt.Fprintf(w, "sweep %d  kind %s  name %s  created %s\n", s.ID, s.Kind, s.Name, s.CreatedAt)
	fmt.Fprintf(w, "ranked by %s (%s is better)  pruning %s\n\n", s.Metric, dir, prune)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"RANK", "POINT", "JOB", "STATE"}
	for _, p := range r.Swept {
		head = append(head, p.Name)
	}
	head = append(head, strings.ToUpper(s.Metric), "EPOCHS", "PRUNED AT", "TIME")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, p := range r.Points {
		row := []string{dash(rankString(p.Rank)), strconv.Itoa(p.Point), strconv.FormatInt(p.Job, 10), p.State}
		cells := pointRow(r, p, func(s float64) string {
			return time.Duration(s * float64(time.Second)).Round(100 * time.Millisecond).String()
		})
		for i, v := range cells {
			cells[i] = dash(v)
		}
		fmt.Fprintln(tw, strings.Join(append(row, cells...), "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, p := range r.Points {
		if p.State == store.Failed && p.Error != "" {
			fmt.Fprintf(w, "point %d (job %d) failed: %s\n", p.Point, p.Job, p.Error)
		}
	}
	if r.BestJob != 0 {
		for _, p := range r.Points {
			if p.Job == r.BestJob {
				fmt.Fprintf(w, "best: job %d (point %d, %s %.6g)\n", p.Job, p.Point, s.Metric, float64(*p.Best))
			}
		}
	}
	return nil
}

func rankString(r int) string {
	if r == 0 {
		return ""
	}
	return strconv.Itoa(r)
}

func writeRankingCSV(w io.Writer, r *history.Ranking) error {
	cw := csv.NewWriter(w)
	head := []string{"rank", "point", "job", "state"}
	for _, p := range r.Swept {
		head = append(head, p.Name)
	}
	cw.Write(append(head, r.Sweep.Metric, "epochs", "pruned_at", "duration_s"))
	for _, p := range r.Points {
		row := []string{rankString(p.Rank), strconv.Itoa(p.Point), strconv.FormatInt(p.Job, 10), p.State}
		cw.Write(append(row, pointRow(r, p, func(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) })...))
	}
	cw.Flush()
	return cw.Error()
}

func listSweeps(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("sweep list takes no arguments")
	}
	db, err := openDB(c)
	if err != nil {
		return err
	}
	defer db.Close()
	ss, err := db.Sweeps(c.Context)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tKIND\tNAME\tPOINTS\tSTATES\tBEST\tCREATED")
	for _, s := range ss {
		r, err := loadRanking(c, db, s.ID)
		if err != nil {
			return err
		}
		n := map[string]int{}
		for _, p := range r.Points {
			n[p.State]++
		}
		var states []string
		for _, st := range []string{store.Succeeded, store.Running, store.Queued, store.Pruned, store.Failed, store.Cancelled} {
			if n[st] > 0 {
				states = append(states, fmt.Sprintf("%d %s", n[st], st))
			}
		}
		best := "-"
		for _, p := range r.Points {
			if p.Job == r.BestJob {
				best = fmt.Sprintf("job %d %s=%.4g", p.Job, s.Metric, float64(*p.Best))
			}
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\n", s.ID, s.Kind, s.Name, len(r.Points), strings.Join(states, ", "), best, s.CreatedAt)
	}
	return tw.Flush()
}

// sweepJobs returns a sweep's job ids in point order.
func sweepJobs(c *cli.Context, db *store.DB, id int64) ([]int64, error) {
	r, err := loadRanking(c, db, id)
	if err != nil {
		return nil, err
	}
	pts := append([]history.SweepPoint(nil), r.Points...)
	sort.Slice(pts, func(i, j int) bool { return pts[i].Point < pts[j].Point })
	ids := make([]int64, len(pts))
	for i, p := range pts {
		ids[i] = p.Job
	}
	return ids, nil
}
