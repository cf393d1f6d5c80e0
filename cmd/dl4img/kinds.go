package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

func kindsCommand() *cli.Command {
	return &cli.Command{
		Name:      "kinds",
		Usage:     "job kinds with their parameters, defaults and docs (all, or those named)",
		ArgsUsage: "[KIND...]",
		Action: func(c *cli.Context) error {
			w := c.App.Writer
			reg := registry()
			names := c.Args().Slice()
			if len(names) == 0 {
				names = reg.JobNames()
			}
			// Every name is checked before anything is printed.
			for _, name := range names {
				if _, err := reg.Job(name); err != nil {
					return usageErr(err)
				}
			}
			for _, name := range names {
				k, _ := reg.Job(name)
				fmt.Fprintf(w, "%s — %s\n", k.Name, k.Doc)
				tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "  PARAM\tTYPE\tDEFAULT\tDOC")
				for _, p := range k.Params() {
					def, _ := json.Marshal(p.Default)
					fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.Name, p.Type, def, p.Doc)
				}
				tw.Flush()
				for _, pn := range sortedKeys(k.Presets) {
					vals, _ := json.Marshal(k.Presets[pn])
					fmt.Fprintf(w, "  preset %s: %s\n", pn, vals)
				}
				fmt.Fprintln(w)
			}
			return nil
		},
	}
}
