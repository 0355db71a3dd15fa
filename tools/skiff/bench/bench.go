// Package bench is the `skiff bench` subcommand: it dispatches to the
// benchmarks in tools/bench (api, lb, scheduler).
package bench

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/skiff-project/skiff/tools/bench/api"
	"github.com/skiff-project/skiff/tools/bench/lb"
	"github.com/skiff-project/skiff/tools/bench/scheduler"
)

// benchmarks maps a benchmark name to its entry point. Each takes the
// arguments after its name (its own flags, --json FILE among them).
var benchmarks = map[string]func(ctx context.Context, args []string) error{
	"api":       api.Run,
	"lb":        lb.Run,
	"scheduler": scheduler.Run,
}

// Run runs the benchmark named by args[0].
func Run(ctx context.Context, args []string) error {
	names := make([]string, 0, len(benchmarks))
	for n := range benchmarks {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(args) == 0 {
		return fmt.Errorf("usage: skiff bench <%s> [flags]", strings.Join(names, "|"))
	}
	run, ok := benchmarks[args[0]]
	if !ok {
		return fmt.Errorf("unknown benchmark %q (have: %s)", args[0], strings.Join(names, ", "))
	}
	return run(ctx, args[1:])
}
