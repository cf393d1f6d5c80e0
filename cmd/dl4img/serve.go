package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/dl4img/dl4img/serve"
	"github.com/dl4img/dl4img/store"
)

func init() { extraCommands = append(extraCommands, serveCommand()) }

func serveCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "read-only web UI over the history: jobs, live progress, curves, comparisons, artifacts",
		Description: "Binds 127.0.0.1:8080 by default. Any other address needs --token T: every request must then\n" +
			"carry it (Authorization: Bearer T, or open the page once with ?token=T to set a cookie).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "addr", Value: "127.0.0.1:8080", Usage: "listen on `HOST:PORT`"},
			&cli.StringFlag{Name: "token", EnvVars: []string{"DL4IMG_TOKEN"}, Usage: "require this `TOKEN` on every request"},
		},
		Action: serveAction,
	}
}

func serveAction(c *cli.Context) error {
	if c.NArg() > 0 {
		return usagef("serve takes no arguments (got %q)", c.Args().First())
	}
	db, err := store.OpenReadOnly(c.Context, c.String("db"))
	if err != nil {
		return usageErr(err)
	}
	defer db.Close()
	l, err := serve.Listen(c.String("addr"), c.String("token"))
	if err != nil {
		return usageErr(err)
	}
	root, err := filepath.Abs(c.String("workdir"))
	if err != nil {
		return usageErr(err)
	}
	reg := registry()
	srv, err := serve.New(db, serve.Options{
		Root:  root,
		Token: c.String("token"),
		Headline: func(kind string) string {
			k, err := reg.Job(kind)
			if err != nil {
				return ""
			}
			return k.Headline
		},
		Log: log.New(c.App.ErrWriter, "serve: ", log.LstdFlags),
	})
	if err != nil {
		return err
	}
	// The token is never printed: the line says only that one is needed.
	note := ""
	if c.String("token") != "" {
		note = " (token required)"
	}
	fmt.Fprintf(c.App.ErrWriter, "dl4img serve: http://%s/ over %s%s; Ctrl-C stops\n", l.Addr(), db.Path(), note)
	ctx, stop := signal.NotifyContext(c.Context, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := srv.Run(ctx, l); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
