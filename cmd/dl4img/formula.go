package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	_ "github.com/dl4img/dl4img/ocr/formula" // registers the formula kind
	"github.com/dl4img/dl4img/ocr/formula/lines"
	"github.com/dl4img/dl4img/ocr/formula/synth"
)

func init() {
	genCommands = append(genCommands, &cli.Command{
		Name:  "formula",
		Usage: "final-round formula images (N.png, labels.txt, boxes.csv with the lines' boxes)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Required: true, Usage: "dataset folder to write"},
			&cli.IntFlag{Name: "n", Aliases: []string{"count"}, Value: 100, Usage: "number of images"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random seed: same seed, same images"},
			&cli.BoolFlag{Name: "fast-png", Usage: "write PNGs at the fastest compression level (generation several times faster, larger files, same pixels)"},
		},
		Action: func(c *cli.Context) error {
			n := c.Int("n")
			if n < 1 {
				return usagef("-n %d: must be >= 1", n)
			}
			if c.NArg() > 0 {
				return usagef("unexpected arguments: %v", c.Args().Slice())
			}
			bar := newImageBar(c, n, "generate")
			start := time.Now()
			err := synth.GenerateDataset(c.Context, synth.Config{Seed: c.Uint64("seed"), FastPNG: c.Bool("fast-png")}, c.String("out"), n, bar.update)
			bar.finish()
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %d images to %s (%.1f images/s)\n", n, c.String("out"), float64(n)/time.Since(start).Seconds())
			return nil
		},
	})
	extraCommands = append(extraCommands, &cli.Command{
		Name:  "formula",
		Usage: "final-round formula tools",
		Subcommands: []*cli.Command{{
			Name:      "extract",
			Usage:     "find the text lines of formula images and join them into strips (resumable)",
			ArgsUsage: "IMAGE_OR_DIR...",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "out", Required: true, Usage: "folder for the strips (NAME.png) and boxes.csv"},
				&cli.StringFlag{Name: "debug", Usage: "folder for one PNG per pipeline stage and image (DEBUG/NAME/NN-stage.png)"},
				&cli.IntFlag{Name: "workers", Usage: "parallel images (default: all cores)"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() == 0 {
					return usagef("want at least one IMAGE_OR_DIR")
				}
				paths, err := lines.ExpandInputs(c.Args().Slice())
				if err != nil {
					return usageErr(err)
				}
				if len(paths) == 0 {
					return usagef("no .png/.jpg images in %v", c.Args().Slice())
				}
				bar := newImageBar(c, len(paths), "extract")
				start := time.Now()
				err = lines.NewExtractor().ExtractFiles(c.Context, paths, c.String("out"), c.String("debug"), c.Int("workers"), bar.update)
				bar.finish()
				if err != nil && !errors.Is(err, lines.ErrNoLines) {
					return err
				}
				fmt.Fprintf(c.App.Writer, "extracted %d images to %s (%.1f images/s)\n", len(paths), c.String("out"), float64(len(paths))/time.Since(start).Seconds())
				// Images without lines are reported, but the others are done.
				return err
			},
		}},
	})
}
