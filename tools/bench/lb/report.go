package lb

import (
	"fmt"
	"image/color"
	"io"
	"os"
	"slices"
	"text/tabwriter"

	"github.com/skiff-project/skiff/tools/bench/internal/chart"
)

func printTable(w io.Writer, rep *Report) {
	m := rep.Machine
	fmt.Fprintf(w, "%d CPUs, kernel %s, %s; load average %.2f %.2f %.2f at start, %.2f %.2f %.2f at end\n",
		m.CPUs, m.Kernel, m.Go, m.LoadStart[0], m.LoadStart[1], m.LoadStart[2], m.LoadEnd[0], m.LoadEnd[1], m.LoadEnd[2])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "mode\tservices\tfull sync ms\t(tracker\tmaps)\tcpu ms\tfaults\tep change ms\t(cpu)\tClusterIP p50 µs\tp99 µs\tconn/s\terr\tNodePort p50 µs\tp99 µs\tconn/s\terr\tTC new ns\tTC est ns\tXDP new ns\tXDP est local ns\tXDP est remote ns\t")
	for _, r := range rep.Results {
		dp := "\t\t\t\t"
		if r.Datapath != nil {
			d := r.Datapath
			dp = fmt.Sprintf("%.0f\t%.0f\t%.0f\t%.0f\t%.0f", d.TCNewNS, d.TCEstablishedNS, d.XDPNewNS, d.XDPEstablishedLocalNS, d.XDPEstablishedRemoteNS)
		}
		mode := r.Mode
		if r.IPTablesBackend != "" {
			mode += " [" + r.IPTablesBackend + "]"
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%.3f\t%.3f\t%.0f\t%.0f\t%.0f\t%d\t%.0f\t%.0f\t%.0f\t%d\t%s\t\n", mode, r.Services,
			r.FullSyncMS, r.FullSyncTrackerMS, r.FullSyncMapsMS, r.FullSyncCPUMS, r.FullSyncPageFaults, r.EndpointChangeMS, r.EndpointChangeCPUMS,
			r.ClusterIP.P50US, r.ClusterIP.P99US, r.ClusterIP.ConnsPerSec, r.ClusterIP.Errors,
			r.NodePort.P50US, r.NodePort.P99US, r.NodePort.ConnsPerSec, r.NodePort.Errors, dp)
	}
	tw.Flush()
	for _, r := range rep.Results {
		for _, l := range []struct {
			path string
			l    Latency
		}{{"ClusterIP", r.ClusterIP}, {"NodePort", r.NodePort}} {
			if l.l.FirstError != "" {
				fmt.Fprintf(w, "%s at %d Services, %s: %d connections failed, the first with: %s\n", r.Mode, r.Services, l.path, l.l.Errors, l.l.FirstError)
			}
		}
	}
	for _, f := range rep.Failures {
		fmt.Fprintln(w, "FAILED:", f)
	}
}

// writePlot draws new-connection p99 latency against the number of
// Services, ClusterIP (solid) and NodePort (dashed), one colour per mode.
func writePlot(path string, rep *Report) error {
	c := chart.Chart{
		Title:  "New-connection latency p99 (connect, request, response, close)",
		XLabel: "Services",
		YLabel: "p99 latency (µs)",
		LogX:   true,
	}
	colors := map[string]color.RGBA{
		ModeSocket:   {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
		ModeTC:       {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
		ModeIPTables: {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	}
	var modes []string
	for _, r := range rep.Results {
		if !slices.Contains(modes, r.Mode) {
			modes = append(modes, r.Mode)
		}
	}
	for _, m := range modes {
		for _, path := range []string{"ClusterIP", "NodePort"} {
			var pts []chart.Point
			for _, r := range rep.Results {
				if r.Mode != m {
					continue
				}
				v := r.ClusterIP.P99US
				if path == "NodePort" {
					v = r.NodePort.P99US
				}
				pts = append(pts, chart.Point{X: float64(r.Services), Y: v})
			}
			if len(pts) == 0 {
				continue
			}
			col, ok := colors[m]
			if !ok { // a mode without a colour of its own
				col = color.RGBA{A: 0xff}
			}
			c.Series = append(c.Series, chart.Series{
				Name:   m + " " + path,
				Color:  col,
				Dashed: path == "NodePort",
				Points: pts,
			})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := c.WritePNG(f, 900, 500); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
