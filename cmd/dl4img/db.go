package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/dl4img/dl4img/store"
)

func dbCommand() *cli.Command {
	return &cli.Command{
		Name:  "db",
		Usage: "move a history between databases",
		Subcommands: []*cli.Command{{
			Name: "copy",
			Usage: "copy a whole history (jobs, tasks, metrics, artifacts, checkpoints) between SQLite and PostgreSQL, " +
				"ids kept, into a database without jobs; all or nothing",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "from", EnvVars: []string{"DL4IMG_COPY_FROM"}, Usage: "source: SQLite `PATH` or postgres:// URL"},
				&cli.StringFlag{Name: "to", EnvVars: []string{"DL4IMG_COPY_TO"}, Usage: "destination: SQLite `PATH` (created if missing) or postgres:// URL"},
			},
			Action: copyDB,
		}},
	}
}

func copyDB(c *cli.Context) error {
	from, to := c.String("from"), c.String("to")
	if from == "" || to == "" {
		return usagef("want --from SRC and --to DST")
	}
	if !store.IsURL(from) {
		// Opening a missing file would create an empty history to copy.
		if _, err := os.Stat(from); err != nil {
			return usagef("--from %s: %v", from, errors.Unwrap(err))
		}
	}
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	src, err := store.Open(ctx, from)
	if err != nil {
		return usageErr(fmt.Errorf("--from: %w", err))
	}
	defer src.Close()
	dst, err := store.Open(ctx, to)
	if err != nil {
		return usageErr(fmt.Errorf("--to: %w", err))
	}
	defer dst.Close()
	var bar countBar
	n, err := store.Copy(ctx, src, dst, func(done, total int64) {
		if bar.bar == nil && done == 0 {
			bar = newCountBar(c, int(total), "copy", "rows")
		}
		bar.update(int(done), int(total))
	})
	bar.finish()
	switch {
	case ctx.Err() != nil:
		return withCode(130, fmt.Errorf("interrupted; %s is unchanged", dst.Path()))
	case errors.Is(err, store.ErrDestinationNotEmpty):
		return usageErr(fmt.Errorf("--to %s: %w", dst.Path(), err))
	case err != nil:
		return fmt.Errorf("copy %s to %s: %w", src.Path(), dst.Path(), err)
	}
	fmt.Fprintf(c.App.Writer, "copied %d rows from %s to %s\n", n, src.Path(), dst.Path())
	return nil
}
