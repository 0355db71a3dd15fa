// Command kubectl is upstream kubectl, built from k8s.io/kubectl's command
// at the version matching Skiff's k8s.io/api, as k8s.io/kubernetes
// cmd/kubectl builds it. The end-to-end script builds it on machines that
// have no kubectl binary. It is a module of its own so that kubectl's
// dependencies stay out of Skiff's go.mod.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	logs.GlogSetter(cmd.GetLogVerbosity(os.Args)) //nolint:errcheck // as upstream: a bad -v value is reported later
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
