// Package version is the `skiff version` subcommand and the version string
// every component reports (the API server's /version among them).
package version

import (
	"context"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is set at build time with -ldflags "-X .../version.Version=v0.1.0".
var Version = "v0.1.0-dev"

// KubernetesVersion is the Kubernetes API version Skiff serves; /version
// reports it as gitVersion so that clients' version skew checks pass.
const KubernetesVersion = "v1.37.2"

// GitCommit returns the VCS revision the binary was built from, if known.
func GitCommit() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
}

// Run prints the version.
func Run(_ context.Context, args []string) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Printf("skiff %s (kubernetes %s, %s)\n", Version, KubernetesVersion, runtime.Version())
	return nil
}
