package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/gomlx/compute"
	"github.com/urfave/cli/v2"

	"github.com/dl4img/dl4img/engine"
	"github.com/dl4img/dl4img/nn/netbench"
	"github.com/dl4img/dl4img/tasks"
	"github.com/dl4img/dl4img/transfer"
)

func init() {
	extraCommands = append(extraCommands, &cli.Command{
		Name:        "bench",
		Usage:       "time training steps of a benchmark network: median step, GFLOP/s, peak memory",
		ArgsUsage:   "NET (" + strings.Join(netbench.Nets(), "|") + ")",
		Subcommands: []*cli.Command{benchONNXCommand()},
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "batch", Usage: "batch size (default: the book's, 32; fcn 8)"},
			&cli.IntFlag{Name: "steps", Value: 5, Usage: "timed steps after one warm-up (compilation) step"},
			&cli.StringFlag{Name: "backend", Value: "auto", EnvVars: []string{"DL4IMG_BACKEND"}, Usage: tasks.BackendSpec},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("want one NET: %s", strings.Join(netbench.Nets(), ", "))
			}
			net := c.Args().First()
			batch := c.Int("batch")
			if batch == 0 {
				batch = netbench.DefaultBatch(net)
			}
			if batch < 1 || c.Int("steps") < 1 {
				return usagef("--batch and --steps must be >= 1")
			}
			backend, name, err := tasks.NewBackend(c.String("backend"))
			if err != nil {
				return usageErr(err)
			}
			res, err := netbench.Run(c.Context, backend, net, batch, c.Int("steps"))
			if errors.Is(err, netbench.ErrUnknownNet) {
				return usageErr(err)
			}
			if err != nil {
				return err
			}
			res.Backend = name
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(struct {
					netbench.Result
					Engine *engine.Stats `json:"engine,omitempty"`
				}{res, engineStats(backend)})
			}
			fmt.Fprintf(c.App.Writer, "%s batch %d on %s: median step %s, %.1f GFLOP/s, first step (compile) %s, peak RSS %d MiB\n",
				res.Net, res.Batch, name, res.MedianStep.Round(1e6), res.GFLOPs, res.FirstStep.Round(1e6), res.PeakRSSBytes>>20)
			printEngineTimes(c.App.Writer, backend)
			return nil
		},
	})
}

func benchONNXCommand() *cli.Command {
	return &cli.Command{
		Name:      "onnx",
		Usage:     "time forward passes of an ONNX backbone on random images: images/s, median batch, peak memory",
		ArgsUsage: "FILE.onnx",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "batch", Value: 16, Usage: "images per forward pass"},
			&cli.IntFlag{Name: "size", Usage: "image size (default: the model's static input size)"},
			&cli.IntFlag{Name: "steps", Value: 5, Usage: "timed batches after one warm-up (compilation) batch"},
			&cli.IntFlag{Name: "finetune", Usage: "time training steps of the last N weighted layers and a dense head instead (as finetune_layers=N)"},
			&cli.StringFlag{Name: "backend", Value: "auto", EnvVars: []string{"DL4IMG_BACKEND"}, Usage: tasks.BackendSpec},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("want one ONNX file")
			}
			if c.Int("batch") < 1 || c.Int("steps") < 1 || c.Int("size") < 0 || c.Int("finetune") < 0 {
				return usagef("--batch and --steps must be >= 1, --size and --finetune >= 0")
			}
			backend, name, err := tasks.NewBackend(c.String("backend"))
			if err != nil {
				return usageErr(err)
			}
			res, err := transfer.BenchONNX(c.Context, backend, c.Args().First(), c.Int("batch"), c.Int("size"), c.Int("steps"), c.Int("finetune"))
			if err != nil {
				return usageErr(err)
			}
			res.Backend = name
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(struct {
					transfer.ONNXBench
					Engine *engine.Stats `json:"engine,omitempty"`
				}{res, engineStats(backend)})
			}
			what := "forward"
			if res.FinetuneLayers > 0 {
				what = fmt.Sprintf("fine-tune %d layers", res.FinetuneLayers)
			}
			fmt.Fprintf(c.App.Writer, "%s %s batch %d at %d² on %s: %.2f images/s, median batch %s, first batch (compile) %s, peak RSS %d MiB\n",
				res.Model, what, res.Batch, res.Size, name, res.ImagesPerS, time.Duration(res.MedianBatchNS).Round(time.Millisecond),
				time.Duration(res.FirstBatchNS).Round(time.Millisecond), res.PeakRSSBytes>>20)
			printEngineTimes(c.App.Writer, backend)
			return nil
		},
	}
}

// engineStats is the engine's record of a run (nil without the engine).
func engineStats(b compute.Backend) *engine.Stats {
	if s, ok := engine.StatsOf(b); ok {
		return &s
	}
	return nil
}

// printEngineTimes lists where a run's time went, by kind of step, longest
// first (all steps, the warm-up included).
func printEngineTimes(w io.Writer, b compute.Backend) {
	s := engineStats(b)
	if s == nil {
		return
	}
	kinds := slices.SortedFunc(maps.Keys(s.Time), func(a, b string) int { return cmp.Compare(s.Time[b], s.Time[a]) })
	var total time.Duration
	for _, k := range kinds {
		total += s.Time[k]
	}
	for _, k := range kinds {
		fmt.Fprintf(w, "  %5.1f%%  %s\n", 100*s.Time[k].Seconds()/total.Seconds(), k)
	}
}
