package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dl4img/dl4img/jobs"
	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/tasks"
)

func submitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "name", Usage: "a name for the job (default: the kind)"},
		&cli.StringSliceFlag{Name: "set", Usage: "parameter `key=value` (repeatable; see dl4img kinds)"},
		&cli.StringFlag{Name: "config", Usage: "`params.json` with parameters (a JSON object)"},
	}
}

func workerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "workers", Value: 1, Usage: "tasks run at once in this process"},
		&cli.StringFlag{Name: "backend", Value: "auto", EnvVars: []string{"DL4IMG_BACKEND"}, Usage: tasks.BackendSpec},
		&cli.DurationFlag{Name: "lease", Value: 30 * time.Second, Usage: "how long a task stays claimed without a heartbeat (a dead worker's tasks move on after this)"},
		&cli.DurationFlag{Name: "db-timeout", Value: 2 * time.Minute, Usage: "how long to retry an unreachable database before exiting 1 (training goes on meanwhile)"},
	}
}

func submitCommand() *cli.Command {
	return &cli.Command{
		Name:      "submit",
		Usage:     "queue a job; prints its id",
		ArgsUsage: "KIND",
		Flags:     submitFlags(),
		Action: func(c *cli.Context) error {
			db, id, err := submit(c)
			if err != nil {
				return err
			}
			defer db.Close()
			fmt.Fprintln(c.App.Writer, id)
			return nil
		},
	}
}

func submit(c *cli.Context) (*store.DB, int64, error) {
	if c.NArg() != 1 {
		return nil, 0, usagef("want exactly one job KIND (see dl4img kinds)")
	}
	config, err := readConfig(c)
	if err != nil {
		return nil, 0, err
	}
	// Checked though the job's files go wherever the workers' --workdir is
	// (usually this same folder).
	if _, err := workDir(c); err != nil {
		return nil, 0, err
	}
	db, err := openDB(c)
	if err != nil {
		return nil, 0, err
	}
	id, err := jobs.Submit(c.Context, db, registry(), jobs.Request{
		Kind: c.Args().First(), Name: c.String("name"), Config: config, Sets: c.StringSlice("set"),
	})
	if err != nil {
		db.Close()
		if p := c.String("config"); p != "" && config != nil {
			return nil, 0, fmt.Errorf("%s: %w", p, err)
		}
		return nil, 0, err
	}
	return db, id, nil
}

// readConfig reads the --config file (nil without one).
func readConfig(c *cli.Context) ([]byte, error) {
	p := c.String("config")
	if p == "" {
		return nil, nil
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, usagef("config: %v", err)
	}
	return b, nil
}

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "submit a job and run it to the end (the one command to type)",
		ArgsUsage: "KIND",
		Flags:     append(submitFlags(), workerFlags()...),
		Action: func(c *cli.Context) error {
			db, id, err := submit(c)
			if err != nil {
				return err
			}
			defer db.Close()
			log, _ := logWriter(c)
			fmt.Fprintf(log, "job %d (%s) submitted to %s\n", id, c.Args().First(), db.Path())
			_, err = work(c, db, store.Scope{Job: id}, true)
			if err != nil {
				return err
			}
			return reportJob(c, db, id)
		},
	}
}

// reportJob prints where a finished job's submission is and maps its state
// to the exit code.
func reportJob(c *cli.Context, db *store.DB, id int64) error {
	j, err := db.Job(c.Context, id)
	if err != nil {
		return err
	}
	arts, err := db.JobArtifacts(c.Context, id)
	if err != nil {
		return err
	}
	root, err := workRoot(c)
	if err != nil {
		return err
	}
	for _, a := range arts {
		if a.Role == "submission" {
			fmt.Fprintf(c.App.Writer, "submission: %s\n", jobs.Resolve(root, a.Path))
		}
	}
	if j.State != store.Succeeded {
		// The first failed task's error says why, in the same line.
		why := ""
		ts, err := db.Tasks(c.Context, id)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if t.State == store.Failed && t.Error != "" {
				why = fmt.Sprintf(": %s: %s", t.Name, t.Error)
				break
			}
		}
		return withCode(exitFailed, fmt.Errorf("job %d %s%s (see dl4img jobs show %d)", id, j.State, why, id))
	}
	return nil
}

func workerCommand() *cli.Command {
	return &cli.Command{
		Name:  "worker",
		Usage: "run queued tasks (several workers may share one database)",
		Flags: append(workerFlags(),
			&cli.BoolFlag{Name: "drain", Usage: "exit when nothing is runnable (exit 1 if a task it ran failed)"},
			&cli.Int64Flag{Name: "job", Usage: "only run tasks of this job `ID`"},
		),
		Action: func(c *cli.Context) error {
			db, err := openDB(c)
			if err != nil {
				return err
			}
			defer db.Close()
			res, err := work(c, db, store.Scope{Job: c.Int64("job")}, c.Bool("drain"))
			if err != nil {
				return err
			}
			if res.Failed > 0 {
				return withCode(exitFailed, fmt.Errorf("%d of %d tasks failed", res.Failed, res.Ran))
			}
			return nil
		},
	}
}

// work runs a worker until drained or signalled. SIGINT/SIGTERM stop it at
// a safe point: running tasks checkpoint and are queued again; the process
// exits 130/143.
func work(c *cli.Context, db *store.DB, scope store.Scope, drain bool) (jobs.Result, error) {
	if _, err := tasks.ResolveBackend(c.String("backend")); err != nil {
		return jobs.Result{}, usageErr(err)
	}
	root, err := workDir(c)
	if err != nil {
		return jobs.Result{}, err
	}
	ctx, cancel := context.WithCancel(c.Context)
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	got := make(chan os.Signal, 1)
	done := make(chan struct{})
	defer close(done)
	log, bars := logWriter(c)
	go func() {
		select {
		case s := <-sigs:
			got <- s
			fmt.Fprintf(log, "\n%s: stopping at the next safe point (checkpoint), then exiting\n", s)
			cancel()
		case <-done:
		}
	}()
	w := &jobs.Worker{
		DB: db, Registry: registry(), Root: root, Backend: c.String("backend"), Workers: c.Int("workers"),
		Lease: c.Duration("lease"), DBTimeout: c.Duration("db-timeout"), Drain: drain, JobID: scope.Job, Sweep: scope.Sweep,
		Log: log, Bars: bars,
	}
	res, err := w.Run(ctx)
	if err != nil {
		return res, err
	}
	var sig os.Signal
	select {
	case sig = <-got:
	default:
	}
	switch sig {
	case os.Interrupt:
		return res, withCode(130, fmt.Errorf("interrupted; %d task(s) queued to resume", res.Interrupted))
	case syscall.SIGTERM:
		return res, withCode(143, fmt.Errorf("terminated; %d task(s) queued to resume", res.Interrupted))
	}
	return res, nil
}
