package main

import (
	"fmt"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"

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
