package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/dl4img/dl4img/ocr" // registers captcha-cnn, captcha-ctc, arith-ctc
)

func init() {
	genCommands = append(genCommands, &cli.Command{
		Name:  "captcha",
		Usage: "captchas (text) or arithmetic expressions (arith) as N.png + labels.txt, like the Python captcha library",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Required: true, Usage: "dataset folder to write (resumes an interrupted run)"},
			&cli.IntFlag{Name: "n", Aliases: []string{"count"}, Value: 1000, Usage: "number of images"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "random seed: same seed, same images byte for byte"},
			&cli.StringFlag{Name: "mode", Value: ocr.ModeText, Usage: "text (book captchas) or arith (expressions like (3-7)+5)"},
			&cli.IntFlag{Name: "width", Usage: "image width (default: 170 text, 180 arith)"},
			&cli.IntFlag{Name: "height", Usage: "image height (default: 80 text, 60 arith)"},
			&cli.StringFlag{Name: "charset", Usage: "text mode characters (default: digits + uppercase)"},
			&cli.IntFlag{Name: "length", Usage: "text mode characters per image (default 4)"},
			&cli.IntFlag{Name: "min-length", Usage: "text mode: shortest captcha (default: --length)"},
			&cli.StringSliceFlag{Name: "font", Usage: "font file or directory (repeatable; default: Go fonts + DejaVu)"},
			&cli.IntSliceFlag{Name: "font-size", Usage: "font size in pixels (repeatable; default: the mode's)"},
			&cli.Float64Flag{Name: "distortion", Value: 1, Usage: "scales rotation, warp and noise (1: the library's; the kinds' parameter distortion, e.g. 0.25 for their demo presets)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("unexpected arguments: %v", c.Args().Slice())
			}
			n := c.Int("n")
			if n < 1 {
				return usagef("-n %d: must be >= 1", n)
			}
			var cfg ocr.CaptchaConfig
			switch c.String("mode") {
			case ocr.ModeText:
				cfg = ocr.BookConfig()
			case ocr.ModeArith:
				cfg = ocr.ArithConfig()
				for _, f := range []string{"charset", "length", "min-length"} {
					if c.IsSet(f) {
						return usagef("--%s applies to --mode text only", f)
					}
				}
			default:
				return usagef("--mode %q: want text or arith", c.String("mode"))
			}
			if c.IsSet("width") {
				cfg.Width = c.Int("width")
			}
			if c.IsSet("height") {
				cfg.Height = c.Int("height")
			}
			if c.IsSet("charset") {
				cfg.Charset = c.String("charset")
			}
			if c.IsSet("length") {
				cfg.MinLen, cfg.MaxLen = c.Int("length"), c.Int("length")
			}
			if c.IsSet("min-length") {
				cfg.MinLen = c.Int("min-length")
			}
			cfg.Fonts = c.StringSlice("font")
			if c.IsSet("font-size") {
				cfg.FontSizes = c.IntSlice("font-size")
			}
			if d := c.Float64("distortion"); d < 0 || d > 1 {
				return usagef("--distortion %g: must be in [0, 1]", d)
			}
			cfg.ScaleDistortion(c.Float64("distortion"))
			cfg.Seed = c.Int64("seed")
			g, err := ocr.NewGenerator(cfg)
			if err != nil {
				return usageErr(err)
			}
			bar := newImageBar(c, n, "generate")
			start := time.Now()
			err = ocr.GenerateDataset(c.Context, g, c.String("out"), n, bar.update)
			bar.finish()
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "wrote %d images to %s in %s (%.1f images/s)\n", n, c.String("out"),
				time.Since(start).Round(time.Millisecond), float64(n)/time.Since(start).Seconds())
			return nil
		},
	})
}
