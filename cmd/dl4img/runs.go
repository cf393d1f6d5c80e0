package main

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/dl4img/dl4img/history"
	"github.com/dl4img/dl4img/store"
	"github.com/dl4img/dl4img/tasks"
)

func runsCommand() *cli.Command {
	return &cli.Command{
		Name:  "runs",
		Usage: "compare runs (jobs) and plot their training curves",
		Subcommands: []*cli.Command{
			{
				Name:      "compare",
				Usage:     "params side by side (differences marked *) and final/best metrics side by side",
				ArgsUsage: "ID ID...",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "machine-readable output"},
					&cli.BoolFlag{Name: "csv", Usage: "CSV output"},
				},
				Action: compareRuns,
			},
			{
				Name:      "plot",
				Usage:     "loss and accuracy per epoch, one line per run",
				ArgsUsage: "ID...",
				Flags: []cli.Flag{&cli.StringFlag{Name: "o", Aliases: []string{"out"}, Value: "curves.png", Usage: "output `PNG`"},
					&cli.Int64Flag{Name: "sweep", Usage: "plot every point of sweep `ID` (after the jobs given, if any)"}},
				Action: plotRuns,
			},
		},
	}
}

func loadComparison(c *cli.Context, db *store.DB, ids []int64) (*history.Comparison, error) {
	runs := make([]history.Run, len(ids))
	for i, id := range ids {
		v, err := loadJobView(c, db, id)
		if err != nil {
			return nil, err
		}
		runs[i] = history.Run{Job: v.Job, Metrics: v.Metrics}
	}
	return history.Compare(runs)
}

func compareRuns(c *cli.Context) error {
	ids, err := jobIDs(c, 1)
	if err != nil {
		return err
	}
	db, err := openDB(c)
	if err != nil {
		return err
	}
	defer db.Close()
	cmp, err := loadComparison(c, db, ids)
	if err != nil {
		return usageErr(err)
	}
	w := c.App.Writer
	switch {
	case c.Bool("json"):
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(cmp)
	case c.Bool("csv"):
		return writeComparisonCSV(w, cmp)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := []string{"PARAM", ""}
	for _, id := range ids {
		head = append(head, fmt.Sprintf("job %d", id))
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, k := range sortedKeys(cmp.Params) {
		mark := ""
		if cmp.Differ[k] {
			mark = "*"
		}
		row := []string{k, mark}
		for _, v := range cmp.Params[k] {
			row = append(row, history.RawString(v))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	fmt.Fprintln(tw)
	head[0], head[1] = "METRIC (last / best)", ""
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, k := range sortedKeys(cmp.Metrics) {
		row := []string{k, ""}
		for _, m := range cmp.Metrics[k] {
			if m == nil {
				row = append(row, "-")
			} else {
				row = append(row, history.Format(float64(m.Last), 4)+" / "+history.Format(float64(m.Best), 4))
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

func writeComparisonCSV(w io.Writer, cmp *history.Comparison) error {
	cw := csv.NewWriter(w)
	head := []string{"section", "name", "differs"}
	for _, id := range cmp.Jobs {
		head = append(head, fmt.Sprintf("job_%d", id))
	}
	cw.Write(head)
	for _, k := range sortedKeys(cmp.Params) {
		row := []string{"param", k, fmt.Sprint(cmp.Differ[k])}
		for _, v := range cmp.Params[k] {
			row = append(row, history.RawString(v))
		}
		cw.Write(row)
	}
	for _, k := range sortedKeys(cmp.Metrics) {
		for _, which := range []string{"last", "best"} {
			row := []string{"metric_" + which, k, ""}
			for _, m := range cmp.Metrics[k] {
				switch {
				case m == nil:
					row = append(row, "")
				case which == "last":
					row = append(row, history.Format(float64(m.Last), -1))
				default:
					row = append(row, history.Format(float64(m.Best), -1))
				}
			}
			cw.Write(row)
		}
	}
	cw.Flush()
	return cw.Error()
}

// plotRuns draws the book's two figures side by side: loss (and val_loss)
// and accuracy (and val_acc) per epoch, one colour per run.
func plotRuns(c *cli.Context) error {
	sw := c.Int64("sweep")
	least := 1 // job ids, unless the sweep gives them
	if sw != 0 {
		least = 0
	}
	ids, err := jobIDs(c, least)
	if err != nil {
		return err
	}
	db, err := openDB(c)
	if err != nil {
		return err
	}
	defer db.Close()
	if sw != 0 {
		pts, err := sweepJobs(c, db, sw)
		if err != nil {
			return err
		}
		ids = append(ids, pts...)
	}
	lossP, accP := plot.New(), plot.New()
	lossP.Title.Text, accP.Title.Text = "loss", "accuracy"
	for _, p := range []*plot.Plot{lossP, accP} {
		p.X.Label.Text = "epoch"
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
	}
	lines := 0
	for i, id := range ids {
		j, err := db.Job(c.Context, id)
		if err != nil {
			return usageErr(err)
		}
		ms, err := db.JobMetrics(c.Context, id)
		if err != nil {
			return err
		}
		series := map[string]plotter.XYs{}
		for _, m := range ms {
			if m.Epoch <= 0 {
				continue
			}
			series[m.Name] = append(series[m.Name], plotter.XY{X: float64(m.Epoch), Y: m.Value})
		}
		col := plotutil.Color(i)
		// A run has one colour; its curves in a panel differ by dash:
		// solid, dashed, dotted, dash-dot.
		dashes := [][]vg.Length{nil, {vg.Points(6), vg.Points(3)}, {vg.Points(1.5), vg.Points(2)},
			{vg.Points(6), vg.Points(2), vg.Points(1.5), vg.Points(2)}}
		perPanel := map[*plot.Plot]int{}
		for _, name := range sortedKeys(series) {
			var p *plot.Plot
			switch {
			case strings.Contains(name, "loss"):
				p = lossP
			case strings.Contains(name, "acc"):
				p = accP
			default:
				continue
			}
			if len(series[name]) < 2 {
				continue // a single value (e.g. test_acc) is no curve
			}
			// NaN and ±Inf (a diverged loss) are gaps: the curve is drawn
			// in pieces, a lone finite point as a dot.
			style := draw.LineStyle{Color: col, Width: vg.Points(1.5), Dashes: dashes[perPanel[p]%len(dashes)]}
			var legend plot.Thumbnailer
			for _, seg := range finiteRuns(series[name]) {
				if len(seg) == 1 {
					sc, err := plotter.NewScatter(seg)
					if err != nil {
						return fmt.Errorf("job %d %s: %w", id, name, err)
					}
					sc.GlyphStyle.Color, sc.GlyphStyle.Radius = col, vg.Points(2)
					p.Add(sc)
					continue
				}
				l, err := plotter.NewLine(seg)
				if err != nil {
					return fmt.Errorf("job %d %s: %w", id, name, err)
				}
				l.LineStyle = style
				p.Add(l)
				legend = l
			}
			if legend == nil {
				continue // nothing drawn as a line
			}
			perPanel[p]++
			p.Legend.Add(fmt.Sprintf("job %d %s: %s", id, j.Name, name), legend)
			lines++
		}
	}
	if lines == 0 {
		return usagef("jobs %v have no per-epoch loss or accuracy metrics to plot", ids)
	}
	const w, h = 12 * vg.Inch, 4.5 * vg.Inch
	img := vgimg.New(w, h)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Millimeter * 4, PadY: vg.Millimeter * 2, PadTop: vg.Millimeter * 2,
		PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 2}
	canvases := plot.Align([][]*plot.Plot{{lossP, accP}}, tiles, dc)
	lossP.Draw(canvases[0][0])
	accP.Draw(canvases[0][1])
	out := c.String("o")
	err = tasks.WriteFileAtomic(out, func(wr io.Writer) error {
		_, err := vgimg.PngCanvas{Canvas: img}.WriteTo(wr)
		return err
	})
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(out)
	fmt.Fprintln(c.App.Writer, abs)
	return nil
}

// finiteRuns splits a curve at its NaN and infinite values into runs of
// finite points.
func finiteRuns(xys plotter.XYs) []plotter.XYs {
	var out []plotter.XYs
	start := 0
	for i := 0; i <= len(xys); i++ {
		if i < len(xys) && !math.IsNaN(xys[i].Y) && !math.IsInf(xys[i].Y, 0) {
			continue
		}
		if i > start {
			out = append(out, xys[start:i])
		}
		start = i + 1
	}
	return out
}
