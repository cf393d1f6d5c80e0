// Command dl4img queues and runs image deep-learning jobs, tracking
// everything in one SQLite file or in a PostgreSQL database that workers
// on many machines share.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/dl4img/dl4img/jobs"
	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/tasks"
	_ "github.com/dl4img/dl4img/tasks/selftest"
)

// extraCommands and genCommands are filled by init functions of the files
// that wire model packages (one file per package), so adding a package's
// commands touches no shared list.
var (
	extraCommands []*cli.Command
	genCommands   []*cli.Command
)

func genCommand() *cli.Command {
	sort.Slice(genCommands, func(i, j int) bool { return genCommands[i].Name < genCommands[j].Name })
	return &cli.Command{
		Name:        "gen",
		Usage:       "generate synthetic datasets (captchas, formulas, slides) in the competitions' layouts",
		Subcommands: genCommands,
	}
}

// Exit codes.
const (
	exitOK     = 0
	exitFailed = 1 // a task failed
	exitUsage  = 2 // usage or bad input
)

// exitError carries an exit code through urfave/cli.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

func usageErr(err error) error           { return exitError{exitUsage, err} }
func usagef(f string, a ...any) error    { return usageErr(fmt.Errorf(f, a...)) }
func withCode(code int, err error) error { return exitError{code, err} }

func main() {
	reexec()
	setGCPercent()
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// run is main without os.Exit, for tests.
func run(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	notFound := false
	app.CommandNotFound = func(c *cli.Context, name string) {
		fmt.Fprintf(stderr, "dl4img: unknown command %q (see dl4img --help)\n", name)
		notFound = true
	}
	err := app.Run(interspersed(args, app.Commands))
	if notFound {
		return exitUsage
	}
	if err == nil {
		return exitOK
	}
	var ee exitError
	code := exitFailed
	switch {
	case errors.As(err, &ee):
		code = ee.code
	case errors.Is(err, jobs.ErrBadInput):
		code = exitUsage
	case isUsage(err):
		code = exitUsage
	}
	if msg := strings.TrimSpace(err.Error()); msg != "" {
		// The store already leaves passwords out of its errors; this is
		// the last line of defence for any other message.
		dsns := append([]string{os.Getenv("DL4IMG_DB"), os.Getenv("DL4IMG_COPY_FROM"), os.Getenv("DL4IMG_COPY_TO")}, args...)
		fmt.Fprintf(stderr, "dl4img: %s\n", store.Scrub(firstLine(msg), dsns...))
	}
	return code
}

// isUsage recognizes urfave/cli's flag errors.
func isUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"flag provided but not defined", "flag needs an argument", "invalid value", "Required flag", "invalid boolean"} {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func newApp(stdout, stderr io.Writer) *cli.App {
	return &cli.App{
		Name:  "dl4img",
		Usage: "queue and run image deep-learning jobs; everything is tracked in one SQLite file or PostgreSQL database",
		Description: "Typical use: `dl4img run selftest` (submit a job and run it to its submission file).\n" +
			"Runs resume where they stopped after a crash or Ctrl-C; `dl4img runs compare` and `runs plot` compare them.",
		Writer:    stdout,
		ErrWriter: stderr,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "db", Value: "dl4img.db", EnvVars: []string{"DL4IMG_DB"}, Usage: "SQLite database `PATH`, or postgres://user@host:5432/dbname URL shared by workers on many machines"},
			&cli.StringFlag{Name: "workdir", Value: "dl4img-runs", EnvVars: []string{"DL4IMG_WORKDIR"}, Usage: "`DIR` for job files (checkpoints, data, outputs); with PostgreSQL, the shared folder as this machine mounts it"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bars or log lines"},
		},
		Commands: append([]*cli.Command{
			submitCommand(),
			runCommand(),
			workerCommand(),
			jobsCommand(),
			runsCommand(),
			kindsCommand(),
			dbCommand(),
			genCommand(),
		}, extraCommands...),
		HideHelpCommand: true,
		// Repeatable flags are repeated, never split on commas: a value
		// such as --set weight_decay=1e-4,1e-3 or --grid lr=0.1,0.01 is one.
		DisableSliceFlagSeparator: true,
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usageErr(err)
		},
		ExitErrHandler: func(*cli.Context, error) {}, // run() maps errors to codes
	}
}

// openDB opens the --db database; every failure is bad input (exit 2).
func openDB(c *cli.Context) (*store.DB, error) {
	db, err := store.Open(c.Context, c.String("db"))
	if err != nil {
		return nil, usageErr(err)
	}
	return db, nil
}

// workRoot is --workdir as an absolute path, for reading what jobs wrote.
func workRoot(c *cli.Context) (string, error) {
	dir, err := filepath.Abs(c.String("workdir"))
	if err != nil {
		return "", usageErr(err)
	}
	return dir, nil
}

// workDir makes sure --workdir exists and can be written.
func workDir(c *cli.Context) (string, error) {
	dir, err := workRoot(c)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", usagef("workdir %s: %v", dir, err)
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return "", usagef("workdir %s is not writable: %v", dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return dir, nil
}

// logWriter is where worker log lines and bars go (nil: nowhere).
func logWriter(c *cli.Context) (w io.Writer, bars bool) {
	if c.Bool("quiet") {
		return io.Discard, false
	}
	w = c.App.ErrWriter
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bars = true
	}
	return w, bars
}

func registry() *tasks.Registry { return tasks.Default }

func ctxOf(c *cli.Context) context.Context { return c.Context }

// globalFlags may be written after the command too.
var globalFlags = map[string]bool{"db": true, "workdir": true, "quiet": true, "q": true}

// boolFlags take no value; every other flag takes the next argument.
var boolFlags = map[string]bool{"quiet": true, "q": true, "drain": true, "json": true, "csv": true, "help": true, "h": true, "version": true,
	"run": true}

// interspersed moves a subcommand's positional arguments after its flags,
// because urfave/cli stops parsing flags at the first positional one and
// users write `dl4img run KIND --set k=v`.
func interspersed(args []string, commands []*cli.Command) []string {
	out := []string{args[0]}
	i := 1
	// Global flags and the command path.
	for i < len(args) {
		a := args[i]
		if strings.HasPrefix(a, "-") {
			out = append(out, a)
			i++
			if name := strings.TrimLeft(a, "-"); !strings.Contains(name, "=") && !boolFlags[name] && i < len(args) {
				out = append(out, args[i])
				i++
			}
			continue
		}
		var found *cli.Command
		for _, c := range commands {
			if c.HasName(a) {
				found = c
			}
		}
		if found == nil {
			break
		}
		out = append(out, a)
		i++
		commands = found.Subcommands
		if len(commands) == 0 {
			break
		}
	}
	var globals, flags, pos []string
	for i < len(args) {
		a := args[i]
		i++
		switch {
		case a == "--":
			pos = append(pos, args[i:]...)
			i = len(args)
		case strings.HasPrefix(a, "-") && len(a) > 1:
			name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
			dst := &flags
			if globalFlags[name] {
				dst = &globals
			}
			*dst = append(*dst, a)
			if !strings.Contains(a, "=") && !boolFlags[name] && i < len(args) {
				*dst = append(*dst, args[i])
				i++
			}
		default:
			pos = append(pos, a)
		}
	}
	// Global flags given after the command go back in front of it.
	out = append(append([]string{out[0]}, globals...), append(out[1:], flags...)...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}
