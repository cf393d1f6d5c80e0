package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/gomlx/compute"
	"github.com/urfave/cli/v2"

	"github.com/dl4img/dl4img/nn/netbench"
	"github.com/dl4img/dl4img/tasks"
	"github.com/dl4img/dl4img/transfer"
)

// checkNets are the models `backend-check` runs: the benchmark nets and the
// transfer model (ONNX backbone + head).
func checkNets() []string { return append(netbench.Nets(), "transfer") }

func init() {
	extraCommands = append(extraCommands, &cli.Command{
		Name:      "backend-check",
		Usage:     "run each model on a fixed batch with fixed weights and compare loss, gradient norm and outputs with a reference (e.g. XLA/CUDA against the Go backend)",
		ArgsUsage: "[NET...] (" + strings.Join(checkNets(), "|") + "; default all)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "backend", Value: "auto", EnvVars: []string{"DL4IMG_BACKEND"}, Usage: tasks.BackendSpec},
			&cli.IntFlag{Name: "batch", Value: 4, Usage: "batch size (with --ref: the reference's)"},
			&cli.StringFlag{Name: "out", Usage: "write the results as JSON to this file"},
			&cli.StringFlag{Name: "ref", Usage: "reference JSON written by --out on another backend; exit 1 if a net differs by more than --tol"},
			&cli.Float64Flag{Name: "tol", Value: 1e-3, Usage: "largest accepted relative error against --ref"},
		},
		Action: backendCheck,
	})
}

func backendCheck(c *cli.Context) error {
	nets := c.Args().Slice()
	if len(nets) == 0 {
		nets = checkNets()
	}
	for _, n := range nets {
		if !slices.Contains(checkNets(), n) {
			return usagef("unknown net %q (want %s)", n, strings.Join(checkNets(), ", "))
		}
	}
	refs := map[string]netbench.CheckResult{}
	if path := c.String("ref"); path != "" {
		var list []netbench.CheckResult
		b, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(b, &list)
		}
		if err != nil {
			return usagef("--ref %s: %v", path, err)
		}
		for _, r := range list {
			refs[r.Net] = r
		}
		for _, n := range nets {
			if _, ok := refs[n]; !ok {
				return usagef("--ref %s: no result for %s", path, n)
			}
		}
	}
	if c.Int("batch") < 1 {
		return usagef("--batch must be >= 1")
	}
	backend, name, err := tasks.NewBackend(c.String("backend"))
	if err != nil {
		return usageErr(err)
	}
	var results []netbench.CheckResult
	var failed []string
	for _, n := range nets {
		batch := c.Int("batch")
		if ref, ok := refs[n]; ok {
			batch = ref.Batch
		}
		r, err := runCheck(backend, n, batch)
		if err != nil {
			return err
		}
		r.Backend = name
		results = append(results, r)
		line := fmt.Sprintf("%-12s batch %d on %s: loss %.6g, grad norm %.6g, output norm %.6g", n, batch, name, r.Loss, r.GradNorm, r.OutputNorm)
		if ref, ok := refs[n]; ok {
			e, err := netbench.RelErr(r, ref)
			if err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
			verdict := "ok"
			if !(e <= c.Float64("tol")) {
				verdict = "DIFFERS"
				failed = append(failed, n)
			}
			line += fmt.Sprintf("; vs %s: rel err %.2g %s", ref.Backend, e, verdict)
		}
		fmt.Fprintln(c.App.Writer, line)
	}
	if path := c.String("out"); path != "" {
		// One result per line: the reference is committed, and diffs stay readable.
		lines := make([]string, len(results))
		for i, r := range results {
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			lines[i] = string(b)
		}
		if err := tasks.WriteFileAtomic(path, func(w io.Writer) error {
			_, err := io.WriteString(w, "[\n"+strings.Join(lines, ",\n")+"\n]\n")
			return err
		}); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("backend %s differs from the reference by more than %g on %s", name, c.Float64("tol"), strings.Join(failed, ", "))
	}
	return nil
}

func runCheck(backend compute.Backend, net string, batch int) (netbench.CheckResult, error) {
	if net == "transfer" {
		return transfer.CheckNet(backend, batch)
	}
	return netbench.Check(backend, net, batch)
}
