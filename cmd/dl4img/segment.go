//go:build !nogdal

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dl4img/dl4img/jobs"
	"github.com/dl4img/dl4img/segment"
	"github.com/dl4img/dl4img/segment/slide"
	"github.com/dl4img/dl4img/tasks"
)

func init() {
	genCommands = append(genCommands, genSlideCommand())
	extraCommands = append(extraCommands, segmentCommand())
}

func genSlideCommand() *cli.Command {
	return &cli.Command{
		Name:      "slide",
		Usage:     "write a synthetic H&E-like whole-slide image (tiled JPEG BigTIFF with overviews) and its exact tumour mask",
		ArgsUsage: "OUT.tif",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "mask", Usage: "ground-truth mask `PATH` (default: OUT_mask.tif)"},
			&cli.IntFlag{Name: "width", Value: 4096, Usage: "width in pixels (level 0)"},
			&cli.IntFlag{Name: "height", Value: 4096, Usage: "height in pixels (level 0)"},
			&cli.Int64Flag{Name: "seed", Value: 1, Usage: "random seed: same seed, same slide"},
			&cli.Float64Flag{Name: "tumour", Value: 0.3, Usage: "rough share of the tissue covered by tumour, in (0, 1]"},
			&cli.StringFlag{Name: "compression", Value: "JPEG", Usage: "JPEG or DEFLATE"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("want exactly one output path OUT.tif")
			}
			out := c.Args().First()
			mask := c.String("mask")
			if mask == "" {
				mask = strings.TrimSuffix(out, filepath.Ext(out)) + "_mask.tif"
			}
			if t := c.Float64("tumour"); t <= 0 || t > 1 {
				return usagef("--tumour %g: must be in (0, 1]", t)
			}
			if c.Int("width") <= 0 || c.Int("height") <= 0 {
				return usagef("--width/--height: must be positive")
			}
			cfg := slide.GenConfig{Width: c.Int("width"), Height: c.Int("height"), Seed: c.Int64("seed"),
				TumourFraction: c.Float64("tumour"), Compression: strings.ToUpper(c.String("compression"))}
			if cfg.Compression != "JPEG" && cfg.Compression != "DEFLATE" {
				return usagef("--compression %q: want JPEG or DEFLATE", c.String("compression"))
			}
			if err := slide.GenerateSlide(c.Context, cfg, out, mask); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%s\n%s\n", out, mask)
			return nil
		},
	}
}

func segmentCommand() *cli.Command {
	return &cli.Command{
		Name:  "segment",
		Usage: "whole-slide tools: export tiles, predict tumour masks with a trained segment model",
		Subcommands: []*cli.Command{
			segmentTileCommand(),
			segmentPredictCommand(),
		},
	}
}

func segmentTileCommand() *cli.Command {
	return &cli.Command{
		Name:      "tile",
		Usage:     "export the tissue tiles of a slide as COL_ROW.jpeg|png plus manifest.csv (re-running skips tiles already written)",
		ArgsUsage: "SLIDE",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Required: true, Usage: "output `DIR`"},
			&cli.IntFlag{Name: "tile-size", Value: 256, Usage: "tile side in pixels"},
			&cli.IntFlag{Name: "overlap", Value: 0, Usage: "pixels shared by neighbouring tiles"},
			&cli.IntFlag{Name: "level", Value: 0, Usage: "pyramid level (0 = full resolution)"},
			&cli.StringFlag{Name: "format", Value: "jpeg", Usage: "jpeg or png"},
			&cli.Float64Flag{Name: "min-tissue", Value: 0, Usage: "keep tiles with at least this tissue fraction (0 keeps all)"},
			&cli.StringFlag{Name: "mask", Usage: "ground-truth mask `PATH` (raster or GeoJSON) to fill tumour_fraction"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return usagef("want exactly one SLIDE")
			}
			path := c.Args().First()
			switch ts, ov, mt, f := c.Int("tile-size"), c.Int("overlap"), c.Float64("min-tissue"), c.String("format"); {
			case ts < 1:
				return usagef("--tile-size %d: must be >= 1", ts)
			case ov < 0 || ov >= ts:
				return usagef("--overlap %d: must be in [0, tile-size)", ov)
			case mt < 0 || mt > 1:
				return usagef("--min-tissue %g: must be in [0, 1]", mt)
			case f != "jpeg" && f != "png":
				return usagef("--format %q: want jpeg or png", f)
			}
			s, err := slide.Open(path)
			if err != nil {
				return usageErr(err)
			}
			defer s.Close()
			if l := c.Int("level"); l < 0 || l >= s.Levels() {
				return usagef("--level %d: %s has levels 0..%d", l, path, s.Levels()-1)
			}
			opts := slide.TileOptions{TileSize: c.Int("tile-size"), Overlap: c.Int("overlap"), Level: c.Int("level"),
				Format: c.String("format"), MinTissue: c.Float64("min-tissue")}
			if m := c.String("mask"); m != "" {
				mk, err := slide.OpenMask(m, s.Size(0))
				if err != nil {
					return usageErr(err)
				}
				defer mk.Close()
				opts.Mask = mk
			}
			out := c.String("out")
			ext := "." + opts.Format
			opts.Skip = func(r slide.TileRecord) bool {
				_, err := os.Stat(filepath.Join(out, r.Name()+ext))
				return err == nil
			}
			n := 0
			if err := slide.ExportTiles(c.Context, s, opts, out, func(slide.TileRecord) error { n++; return nil }); err != nil {
				return err
			}
			// The manifest lists every tile of the tiling, including those a
			// previous run wrote.
			opts.Skip = nil
			recs, err := slide.PlanTiles(c.Context, s, opts)
			if err != nil {
				return err
			}
			man := filepath.Join(out, "manifest.csv")
			tiles := make([]segment.Tile, len(recs))
			for i, r := range recs {
				tiles[i] = segment.Tile{Slide: filepath.Base(path), TileRecord: r}
			}
			if err := segment.WriteManifest(man, tiles); err != nil {
				return err
			}
			fmt.Fprintf(c.App.Writer, "%d tiles written (%d in the tiling), manifest %s\n", n, len(recs), man)
			return nil
		},
	}
}

func segmentPredictCommand() *cli.Command {
	return &cli.Command{
		Name:      "predict",
		Usage:     "predict and stitch tumour masks (tiled GeoTIFF + overlay PNG) of slides with a trained segment job or checkpoint dir",
		ArgsUsage: "SLIDE...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Required: true, Usage: "segment `JOB_ID` (from the --db) or a train/checkpoint directory"},
			&cli.StringFlag{Name: "out", Required: true, Usage: "output `DIR`"},
			&cli.StringFlag{Name: "masks", Usage: "`DIR` of ground-truth masks (SLIDE_mask.tif, …) for Dice/IoU"},
			&cli.StringFlag{Name: "blend", Value: "gaussian", Usage: "constant, gaussian or center"},
			&cli.IntFlag{Name: "overlap", Value: -1, Usage: "window overlap in pixels (default: the model's)"},
			&cli.StringFlag{Name: "backend", Value: "auto", EnvVars: []string{"DL4IMG_BACKEND"}, Usage: tasks.BackendSpec},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() < 1 {
				return usagef("want at least one SLIDE")
			}
			dir := c.String("model")
			if id, err := strconv.ParseInt(dir, 10, 64); err == nil {
				db, err := openDB(c)
				if err != nil {
					return err
				}
				j, err := db.Job(c.Context, id)
				db.Close()
				if err != nil {
					return usagef("--model %d: %v", id, err)
				}
				root, err := workRoot(c)
				if err != nil {
					return err
				}
				dir = jobs.Resolve(root, j.WorkDir)
			}
			blend, err := slide.ParseBlend(c.String("blend"))
			if err != nil {
				return usageErr(err)
			}
			backend, _, err := tasks.NewBackend(c.String("backend"))
			if err != nil {
				return usageErr(err)
			}
			m, err := segment.LoadModel(backend, dir)
			if err != nil {
				return usageErr(err)
			}
			out := c.String("out")
			results := make([]segment.SlideResult, 0, c.NArg())
			for _, path := range c.Args().Slice() {
				mask := ""
				if md := c.String("masks"); md != "" {
					mask = segment.FindMask(md, path)
				}
				opts := m.PredictOptions()
				opts.Blend = blend
				if ov := c.Int("overlap"); ov >= 0 {
					opts.Overlap = ov
				}
				r, err := segment.PredictFile(c.Context, m, path, mask, out, opts)
				if err != nil {
					return err
				}
				results = append(results, r)
				fmt.Fprintf(c.App.Writer, "%s: tumour_fraction=%.4f dice=%s mask=%s overlay=%s\n", r.Slide, r.TumourFraction,
					fmtDice(r), r.MaskPath, r.OverlayPath)
			}
			sub := filepath.Join(out, "submission.csv")
			if err := segment.WriteSubmission(sub, results); err != nil {
				return err
			}
			fmt.Fprintln(c.App.Writer, sub)
			return nil
		},
	}
}

func fmtDice(r segment.SlideResult) string {
	if !r.HasTruth {
		return "-"
	}
	return strconv.FormatFloat(r.Dice, 'f', 4, 64)
}
