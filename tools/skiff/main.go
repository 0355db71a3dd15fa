// Command skiff is the single Skiff binary. Each role or tool is a
// subcommand implemented in its own package under tools/skiff.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/skiff-project/skiff/tools/skiff/bench"
	"github.com/skiff-project/skiff/tools/skiff/hollow"
	"github.com/skiff-project/skiff/tools/skiff/server"
	"github.com/skiff-project/skiff/tools/skiff/version"
)

// command is one subcommand: run gets the arguments after its name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = []command{
	{"bench", "run a benchmark (api, lb, scheduler)", bench.Run},
	{"hollow-nodes", "join hollow nodes (no containers) to a cluster, for labs and scale tests", hollow.Run},
	{"server", "run the control plane: etcd, API server, scheduler and controllers", server.Run},
	{"version", "print the version", version.Run},
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: skiff <command> [flags]\n\ncommands:\n")
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'skiff <command> -h' for a command's flags.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, c := range commands {
		if c.name != os.Args[1] {
			continue
		}
		err := c.run(ctx, os.Args[2:])
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "skiff %s: %v\n", c.name, err)
			os.Exit(1)
		}
		return
	}
	fmt.Fprintf(os.Stderr, "skiff: unknown command %q\n\n", os.Args[1])
	usage()
	os.Exit(2)
}
