package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

	"github.com/dl4img/dl4img/tasks"
	"github.com/dl4img/dl4img/transfer"
)

func init() {
	genCommands = append(genCommands, &cli.Command{
		Name:  "cats-dogs",
		Usage: "synthetic cats vs dogs in Kaggle's layout (train/cat.N.png, train/dog.N.png, test/N.png, test_labels.csv)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Required: true, Usage: "dataset folder to write"},
			&cli.IntFlag{Name: "n", Value: 300, Usage: "training images per class"},
			&cli.IntFlag{Name: "test", Value: 100, Usage: "test images"},
			&cli.IntFlag{Name: "size", Value: 64, Usage: "image side in pixels"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "random seed: same seed, same images"},
		},
		Action: func(c *cli.Context) error {
			n, test, size := c.Int("n"), c.Int("test"), c.Int("size")
			switch {
			case c.NArg() > 0:
				return usagef("unexpected arguments: %v", c.Args().Slice())
			case n < 1 || test < 0:
				return usagef("-n %d -test %d: want n >= 1, test >= 0", n, test)
			case size < 16 || size > 1024:
				return usagef("-size %d: must be in [16, 1024]", size)
			}
			w, bars := logWriter(c)
			var bar *progressbar.ProgressBar
			if bars {
				bar = progressbar.NewOptions(2*n+test, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription("generate"))
			}
			start := time.Now()
			err := transfer.GenerateSynth(c.Context, c.String("out"), n, test, size, c.Int64("seed"), func(done, _ int) {
				if bar != nil {
					bar.Set(done)
				}
			})
			if bar != nil {
				bar.Finish()
				fmt.Fprintln(w)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %d images to %s in %.1fs\n", 2*n+test, c.String("out"), time.Since(start).Seconds())
			return nil
		},
	})
}

func init() {
	extraCommands = append(extraCommands, &cli.Command{
		Name:  "transfer",
		Usage: "transfer-learning tools outside a job",
		Subcommands: []*cli.Command{{
			Name:      "features",
			Usage:     "write the pooled features of images (filename,f0,f1,…) through the job's feature cache",
			ArgsUsage: "IMAGE_OR_DIR...",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "backbone", Required: true, Usage: "ONNX backbone `FILE`"},
				&cli.StringFlag{Name: "backbone-preset", Value: "resnet50-torchvision", Usage: "preprocessing preset: " + strings.Join(transfer.PresetNames(), ", ")},
				&cli.IntFlag{Name: "input-size", Usage: "override the preset's input size (pixels, square)"},
				&cli.StringFlag{Name: "feature-node", Usage: "ONNX node (output) to cut at (default: the classifier's input)"},
				&cli.IntFlag{Name: "batch", Value: 16, Usage: "images per forward pass"},
				&cli.StringFlag{Name: "out", Required: true, Usage: "CSV `FILE` to write"},
				&cli.StringFlag{Name: "cache", Usage: "feature cache `DIR` (default: <workdir>/cache/transfer-features, the jobs' own)"},
				&cli.BoolFlag{Name: "skip-bad", Usage: "skip (and report) files that are not images instead of failing"},
				&cli.StringFlag{Name: "backend", Value: "auto", EnvVars: []string{"DL4IMG_BACKEND"}, Usage: tasks.BackendSpec},
			},
			Action: transferFeatures,
		}, {
			Name:      "inspect",
			Usage:     "what dl4img makes of an ONNX backbone: input, feature cut and width, ops after the cut, rewritten and unsupported ops; runs one image",
			ArgsUsage: "MODEL.onnx",
			Flags: []cli.Flag{
				&cli.IntFlag{Name: "input-size", Usage: "image size (pixels, square; default: the model's static size)"},
				&cli.StringFlag{Name: "feature-node", Usage: "ONNX node (output) to cut at (default: the classifier's input)"},
				&cli.StringFlag{Name: "backend", Value: "auto", EnvVars: []string{"DL4IMG_BACKEND"}, Usage: tasks.BackendSpec},
			},
			Action: transferInspect,
		}},
	})
}

// transferInspect prints the inspection; a model that does not load
// gets the report so far on stdout and one line on stderr (exit 2).
func transferInspect(c *cli.Context) error {
	if c.NArg() != 1 {
		return usagef("want one ONNX file")
	}
	if n := c.Int("input-size"); n != 0 && n < 8 {
		return usagef("--input-size %d: must be >= 8", n)
	}
	backend, _, err := tasks.NewBackend(c.String("backend"))
	if err != nil {
		return usageErr(err)
	}
	in, err := transfer.Inspect(backend, c.Args().First(), c.Int("input-size"), c.String("feature-node"))
	in.Print(c.App.Writer)
	if err != nil {
		return usageErr(err)
	}
	return nil
}

func transferFeatures(c *cli.Context) error {
	if c.NArg() == 0 {
		return usagef("give the images: files or folders")
	}
	if c.Int("batch") < 1 {
		return usagef("--batch must be >= 1")
	}
	pre, ok := transfer.BackbonePresets[c.String("backbone-preset")]
	if !ok {
		return usagef("--backbone-preset %q: unknown (known: %s)", c.String("backbone-preset"), strings.Join(transfer.PresetNames(), ", "))
	}
	if n := c.Int("input-size"); n != 0 {
		if n < 8 {
			return usagef("--input-size %d: must be >= 8", n)
		}
		pre.Size = n
	}
	items, err := transfer.ListImages(c.Args().Slice())
	if err != nil {
		return usageErr(err)
	}
	cache := c.String("cache")
	if cache == "" {
		root, err := filepath.Abs(c.String("workdir"))
		if err != nil {
			return usageErr(err)
		}
		cache = filepath.Join(root, "cache", "transfer-features")
	}
	backend, _, err := tasks.NewBackend(c.String("backend"))
	if err != nil {
		return usageErr(err)
	}
	bb, err := transfer.LoadBackbone(backend, c.String("backbone"), pre, c.String("feature-node"))
	if err != nil {
		return usageErr(err)
	}
	w, bars := logWriter(c)
	var bar *progressbar.ProgressBar
	ex := &transfer.Extractor{Backbones: []*transfer.Backbone{bb}, CacheDir: cache, BatchSize: c.Int("batch"),
		SkipBad: c.Bool("skip-bad"), Logf: func(f string, a ...any) { fmt.Fprintf(w, f+"\n", a...) },
		Progress: func(label string, done, total int) {
			if !bars {
				return
			}
			if bar == nil {
				bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(label))
			}
			bar.Set(done)
		}}
	start := time.Now()
	rows, dim, err := transfer.WriteFeaturesCSV(c.Context, ex, items, c.String("out"))
	if bar != nil {
		bar.Finish()
		fmt.Fprintln(w)
	}
	if err != nil {
		return usageErr(err)
	}
	fmt.Fprintf(c.App.Writer, "wrote %d rows of %d features to %s (%d computed, %d from the cache) in %.1fs\n",
		rows, dim, c.String("out"), ex.Computed, rows-ex.Computed, time.Since(start).Seconds())
	return nil
}
