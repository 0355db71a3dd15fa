// Package hollow is the `skiff hollow-nodes` subcommand: it joins hollow
// nodes to a cluster, as kubemark's hollow-node does for Kubernetes. The
// nodes register, heartbeat through their Leases and "run" the pods bound
// to them (Running and Ready with an IP, graceful deletion completed) with
// no containers behind them. They are for labs and end-to-end checks of the
// control plane (rollouts, evictions, EndpointSlices) on machines where no
// agent runs, and for scale tests.
package hollow

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/skiff-project/skiff/tools/hollownode"
)

// Run is the `skiff hollow-nodes` command. It runs until ctx ends (SIGTERM
// or Ctrl-C), then stops heartbeating; with --delete-on-exit it also
// deletes its Node objects and Leases.
func Run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("hollow-nodes", flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of the cluster to join")
	count := fs.Int("nodes", 3, "number of hollow nodes")
	prefix := fs.String("prefix", "hollow-node-", "node name prefix (names are prefix + index)")
	zones := fs.String("zones", "zone-a,zone-b,zone-c", "topology.kubernetes.io/zone values, assigned round robin")
	cpu := fs.String("cpu", "4", "CPU capacity of each node")
	memory := fs.String("memory", "16Gi", "memory capacity of each node")
	pods := fs.Int64("max-pods", 110, "pod capacity of each node")
	startup := fs.Duration("pod-startup-delay", 0, "how long a bound pod stays Pending before it runs")
	stop := fs.Duration("pod-stop-delay", 0, "how long a deleted pod takes to stop")
	lease := fs.Duration("lease-duration", 40*time.Second, "node lease duration (renewed every quarter of it)")
	deleteOnExit := fs.Bool("delete-on-exit", false, "delete the nodes and their leases when stopped")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %v", fs.Args())
	}
	if *kubeconfig == "" {
		return fmt.Errorf("--kubeconfig (or KUBECONFIG) is required")
	}
	cpuQ, err := resource.ParseQuantity(*cpu)
	if err != nil {
		return fmt.Errorf("--cpu: %w", err)
	}
	memQ, err := resource.ParseQuantity(*memory)
	if err != nil {
		return fmt.Errorf("--memory: %w", err)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	cfg.UserAgent = "skiff-hollow-nodes"
	cfg.QPS, cfg.Burst = 100, 200
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	cfg.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "hollow-nodes")
	var zoneList []string
	for _, z := range strings.Split(*zones, ",") {
		if z = strings.TrimSpace(z); z != "" {
			zoneList = append(zoneList, z)
		}
	}
	cluster, err := hollownode.Start(ctx, hollownode.Config{
		Client: client, Count: *count, Prefix: *prefix, Zones: zoneList,
		CPU: cpuQ, Memory: memQ, Pods: *pods,
		LeaseDuration: *lease, StartupDelay: *startup, StopDelay: *stop,
		Logger: log,
	})
	if err != nil {
		return err
	}
	log.Info("hollow nodes running", "nodes", strings.Join(cluster.Nodes(), ","))
	<-ctx.Done()
	cluster.Stop()
	if *deleteOnExit {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cluster.Delete(dctx); err != nil {
			return fmt.Errorf("delete hollow nodes: %w", err)
		}
	}
	return nil
}
