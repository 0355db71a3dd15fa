package chart

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"math"
	"slices"
	"testing"
)

var (
	red  = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	blue = color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff}
)

var points = []Point{{1, 440}, {10, 400}, {100, 360}, {1000, 330}, {10000, 345}, {30000, 610}}

func render(t *testing.T, c *Chart, w, h int) image.Image {
	t.Helper()
	var buf bytes.Buffer
	if err := c.WritePNG(&buf, w, h); err != nil {
		t.Fatalf("WritePNG: %v", err)
	}
	img, err := png.Decode(&buf)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	return img
}

// count counts the pixels of colour c.
func count(img image.Image, c color.RGBA) int {
	n := 0
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if color.RGBAModel.Convert(img.At(x, y)) == c {
				n++
			}
		}
	}
	return n
}

func TestTwoSeries(t *testing.T) {
	shifted := slices.Clone(points)
	for i := range shifted {
		shifted[i].Y -= 100
	}
	c := &Chart{
		Title: "title", XLabel: "Services", YLabel: "p99 latency (µs)", LogX: true,
		Series: []Series{
			{Name: "solid", Color: red, Points: points},
			{Name: "dashed", Color: blue, Dashed: true, Points: shifted},
		},
	}
	img := render(t, c, 900, 500)
	if got := img.Bounds().Size(); got != image.Pt(900, 500) {
		t.Fatalf("size %v, want 900x500", got)
	}
	// Lines 2 px wide over several hundred pixels of path.
	for _, col := range []color.RGBA{red, blue} {
		if n := count(img, col); n < 500 {
			t.Errorf("%v: %d pixels, want a drawn line", col, n)
		}
	}
}

func TestDashedHasGaps(t *testing.T) {
	pixels := func(dashed bool) int {
		c := &Chart{LogX: true, Series: []Series{{Color: blue, Dashed: dashed, Points: points}}}
		return count(render(t, c, 0, 0), blue)
	}
	solid, dashed := pixels(false), pixels(true)
	// 10 on, 6 off: about 5/8 of the line, plus the markers and the
	// legend sample.
	if dashed >= solid*85/100 {
		t.Errorf("dashed %d pixels, solid %d: want gaps", dashed, solid)
	}
	if dashed < solid/3 {
		t.Errorf("dashed %d pixels, solid %d: too few", dashed, solid)
	}
}

func TestDefaultSize(t *testing.T) {
	img := render(t, &Chart{}, 0, -1)
	if got := img.Bounds().Size(); got != image.Pt(DefaultWidth, DefaultHeight) {
		t.Errorf("size %v", got)
	}
}

func TestEdgeCases(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for name, c := range map[string]*Chart{
		"empty":         {},
		"empty log":     {LogX: true, Title: "t", XLabel: "x", YLabel: "y"},
		"no points":     {LogX: true, Series: []Series{{Name: "a", Color: red}}},
		"one point":     {LogX: true, Series: []Series{{Name: "a", Color: red, Points: []Point{{100, 5}}}}},
		"one point lin": {Series: []Series{{Name: "a", Color: red, Points: []Point{{3, 5}}}}},
		"all zero":      {LogX: true, Series: []Series{{Name: "a", Color: red, Points: []Point{{1, 0}, {10, 0}, {100, 0}}}}},
		"nan inf": {LogX: true, Series: []Series{{Name: "a", Color: red, Dashed: true, Points: []Point{
			{nan, 1}, {1, nan}, {inf, 2}, {10, inf}, {100, -inf}, {0, 3}, {-5, 4}, {1000, 7}, {10000, 9}}}}},
		"only invalid": {LogX: true, Series: []Series{{Name: "a", Color: red, Points: []Point{{0, 1}, {nan, nan}}}}},
		"negative y":   {Series: []Series{{Name: "a", Color: red, Points: []Point{{0, -3}, {1, 2}, {2, -0.5}}}}},
		"tiny values":  {Series: []Series{{Name: "a", Color: red, Points: []Point{{1e-9, 1e-7}, {2e-9, 3e-7}}}}},
		"huge range":   {LogX: true, Series: []Series{{Name: "a", Color: red, Points: []Point{{1e-30, 1e30}, {1e30, 1}}}}},
		"long name":    {Series: []Series{{Name: string(make([]byte, 500)), Color: red, Points: points}}},
	} {
		t.Run(name, func(t *testing.T) {
			render(t, c, 900, 500)
		})
	}
	var buf bytes.Buffer
	if err := (&Chart{}).WritePNG(&buf, 50, 50); err == nil {
		t.Error("50x50: no error")
	}
}

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct{ lo, hi float64 }{
		{0, 1}, {0, 615}, {0, 800}, {0, 7}, {0, 0.003}, {0, 123456}, {-3, 2}, {0, 0.26},
	} {
		lo, hi, ts := niceTicks(tc.lo, tc.hi)
		if lo > tc.lo || hi < tc.hi || len(ts) < 4 || len(ts) > 6 || ts[0].v != lo || ts[len(ts)-1].v != hi {
			t.Errorf("niceTicks(%v, %v) = %v, %v, %v", tc.lo, tc.hi, lo, hi, ts)
		}
		for _, tk := range ts {
			if tk.label == "" {
				t.Errorf("niceTicks(%v, %v): unlabelled tick %v", tc.lo, tc.hi, tk.v)
			}
		}
	}
	_, _, ts := niceTicks(0, 615)
	var labels []string
	for _, tk := range ts {
		labels = append(labels, tk.label)
	}
	if want := []string{"0", "200", "400", "600", "800"}; !slices.Equal(labels, want) {
		t.Errorf("labels %q, want %q", labels, want)
	}
}

func TestLogTicks(t *testing.T) {
	var labels []string
	for _, tk := range logTicks(0, math.Log10(30000)) {
		if tk.label != "" {
			labels = append(labels, tk.label)
		}
	}
	if want := []string{"1", "10", "100", "1000", "10000"}; !slices.Equal(labels, want) {
		t.Errorf("labels %q, want %q", labels, want)
	}
}
