// Package chart draws simple line charts as PNG images with the
// standard library's image packages and golang.org/x/image's fixed 7x13
// bitmap font: no vector backends, no embedded TrueType fonts, so a
// binary that draws a benchmark plot stays small.
//
// A chart has a white background, a title, axis labels, numeric ticks
// with light grid lines (linear Y from zero, X linear or logarithmic
// with powers of ten), one 2-pixel line per series, solid or dashed,
// a square marker at each point, and a legend to the right of the plot
// area. There is no anti-aliasing.
package chart

import (
	"errors"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strconv"
)

// Default image size, used when WritePNG is given a width or height of
// zero or less.
const (
	DefaultWidth  = 900
	DefaultHeight = 500
)

// Smallest accepted image size.
const (
	minWidth  = 200
	minHeight = 120
)

// Point is one data point.
type Point struct {
	X, Y float64
}

// Series is one line. Its points are joined in the order given; a point
// that cannot be drawn (NaN or infinite, or an X of zero or less on a
// logarithmic axis) is skipped and breaks the line.
type Series struct {
	Name   string
	Color  color.RGBA
	Dashed bool
	Points []Point
}

// Chart is a line chart.
type Chart struct {
	Title, XLabel, YLabel string
	// LogX makes the X axis logarithmic, ticked at powers of ten.
	LogX   bool
	Series []Series
}

// Drawing parameters, in pixels.
const (
	lineWidth   = 2
	markerSize  = 7 // side of the square marker, odd so it centres
	dashOn      = 10
	dashOff     = 6
	tickLen     = 5
	minorLen    = 3
	inset       = 8 // gap between the axes and the data range
	legendLine  = 36
	legendRow   = 18
	legendPad   = 8
	legendGap   = 16 // between the plot area and the legend
	titleHeight = 34
)

var (
	white     = color.RGBA{0xff, 0xff, 0xff, 0xff}
	black     = color.RGBA{0, 0, 0, 0xff}
	textColor = color.RGBA{0x20, 0x20, 0x20, 0xff}
	gridColor = color.RGBA{0xe4, 0xe4, 0xe4, 0xff}
	boxColor  = color.RGBA{0xb0, 0xb0, 0xb0, 0xff}
)

// WritePNG draws the chart at width x height pixels and writes it to w
// as a PNG. A width or height of zero or less means the default.
func (c *Chart) WritePNG(w io.Writer, width, height int) error {
	img, err := c.Render(width, height)
	if err != nil {
		return err
	}
	return png.Encode(w, img)
}

// Render draws the chart at width x height pixels. A width or height of
// zero or less means the default.
func (c *Chart) Render(width, height int) (*image.RGBA, error) {
	if width <= 0 {
		width = DefaultWidth
	}
	if height <= 0 {
		height = DefaultHeight
	}
	if width < minWidth || height < minHeight {
		return nil, errors.New("chart: image smaller than 200x120 pixels")
	}
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)

	xs, ys := c.axes()

	// Layout: title on top; Y label (rotated) and Y tick labels on the
	// left; X tick labels and X label below; legend on the right.
	yTickW := 0
	for _, t := range ys.ticks {
		yTickW = max(yTickW, textWidth(t.label))
	}
	left := 10 + yTickW + tickLen + 6
	if c.YLabel != "" {
		left += glyphH + 8
	}
	top := 12
	if c.Title != "" {
		top = titleHeight
	}
	bottom := height - (tickLen + 6 + glyphH + 10)
	if c.XLabel != "" {
		bottom -= glyphH + 8
	}
	legendW := 0
	for _, s := range c.Series {
		legendW = max(legendW, textWidth(s.Name))
	}
	if len(c.Series) > 0 {
		legendW += legendLine + 3*legendPad
	}
	right := width - 12 - max(legendW, textWidth(lastLabel(xs))/2)
	if legendW > 0 {
		right -= legendGap
	}
	// Too long legend names: keep at least half the width for the plot
	// and let the legend text run off the image.
	right = max(right, left+(width-left)/2)
	bottom = max(bottom, top+20)
	plot := image.Rect(left, top, right, bottom)

	xs.p0, xs.p1 = float64(plot.Min.X+inset), float64(plot.Max.X-1-inset)
	ys.p0, ys.p1 = float64(plot.Max.Y-1-inset), float64(plot.Min.Y+inset)

	// Grid, axes, ticks.
	for _, t := range xs.ticks {
		x := xs.pixel(t.v)
		if t.label != "" {
			vline(img, x, plot.Min.Y, plot.Max.Y-1, gridColor)
			vline(img, x, plot.Max.Y, plot.Max.Y+tickLen, black)
			drawText(img, t.label, x-textWidth(t.label)/2, plot.Max.Y+tickLen+4, textColor)
		} else {
			vline(img, x, plot.Max.Y, plot.Max.Y+minorLen, black)
		}
	}
	for _, t := range ys.ticks {
		y := ys.pixel(t.v)
		hline(img, plot.Min.X, plot.Max.X-1, y, gridColor)
		hline(img, plot.Min.X-tickLen-1, plot.Min.X-1, y, black)
		drawText(img, t.label, plot.Min.X-tickLen-4-textWidth(t.label), y-glyphH/2, textColor)
	}
	hline(img, plot.Min.X-1, plot.Max.X-1, plot.Max.Y, black)
	vline(img, plot.Min.X-1, plot.Min.Y, plot.Max.Y, black)

	// Labels and title.
	if c.XLabel != "" {
		drawText(img, c.XLabel, (plot.Min.X+plot.Max.X-textWidth(c.XLabel))/2, plot.Max.Y+tickLen+4+glyphH+8, textColor)
	}
	if c.YLabel != "" {
		drawTextUp(img, c.YLabel, 10, (plot.Min.Y+plot.Max.Y+textWidth(c.YLabel))/2, textColor)
	}
	if c.Title != "" {
		// Bold by drawing twice, one pixel apart.
		x := (plot.Min.X + plot.Max.X - textWidth(c.Title)) / 2
		x = max(4, x)
		drawText(img, c.Title, x, 10, black)
		drawText(img, c.Title, x+1, 10, black)
	}

	// Series, clipped to the plot area widened by the brush and marker.
	clip := img.SubImage(plot.Inset(-markerSize)).(*image.RGBA)
	for _, s := range c.Series {
		var pen pen
		prev, havePrev := [2]int{}, false
		for _, p := range s.Points {
			if !xs.valid(p.X) || !ys.valid(p.Y) {
				havePrev = false
				continue
			}
			cur := [2]int{xs.pixel(p.X), ys.pixel(p.Y)}
			if havePrev {
				pen.line(clip, prev[0], prev[1], cur[0], cur[1], s.Color, s.Dashed)
			}
			prev, havePrev = cur, true
		}
		for _, p := range s.Points {
			if xs.valid(p.X) && ys.valid(p.Y) {
				marker(clip, xs.pixel(p.X), ys.pixel(p.Y), s.Color, s.Dashed)
			}
		}
	}

	// Legend, to the right of the plot area.
	if len(c.Series) > 0 {
		lx := plot.Max.X + legendGap
		box := image.Rect(lx, plot.Min.Y, lx+legendW, plot.Min.Y+2*legendPad+len(c.Series)*legendRow-(legendRow-glyphH))
		draw.Draw(img, box, image.NewUniform(white), image.Point{}, draw.Src)
		rectOutline(img, box, boxColor)
		for i, s := range c.Series {
			y := box.Min.Y + legendPad + i*legendRow
			cy := y + glyphH/2
			x0 := box.Min.X + legendPad
			var pen pen
			pen.line(img, x0, cy, x0+legendLine-1, cy, s.Color, s.Dashed)
			marker(img, x0+legendLine/2, cy, s.Color, s.Dashed)
			drawText(img, s.Name, x0+legendLine+legendPad, y, textColor)
		}
	}
	return img, nil
}

// tick is one tick on an axis; minor ticks have no label.
type tick struct {
	v     float64
	label string
}

// scale maps data values on one axis to pixels.
type scale struct {
	log    bool
	lo, hi float64 // data range (for log, of log10 values)
	p0, p1 float64 // pixels of lo and hi
	ticks  []tick
}

func (s *scale) valid(v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return false
	}
	return !s.log || v > 0
}

func (s *scale) pixel(v float64) int {
	if s.log {
		v = math.Log10(v)
	}
	f := (v - s.lo) / (s.hi - s.lo)
	return int(math.Round(s.p0 + f*(s.p1-s.p0)))
}

func lastLabel(s scale) string {
	for i := len(s.ticks) - 1; i >= 0; i-- {
		if s.ticks[i].label != "" {
			return s.ticks[i].label
		}
	}
	return ""
}

// axes works out both axes' ranges and ticks from the drawable points.
func (c *Chart) axes() (xs, ys scale) {
	xs.log = c.LogX
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := 0.0, math.Inf(-1)
	for _, s := range c.Series {
		for _, p := range s.Points {
			if !xs.valid(p.X) || !ys.valid(p.Y) {
				continue
			}
			x := p.X
			if xs.log {
				x = math.Log10(x)
			}
			xmin, xmax = min(xmin, x), max(xmax, x)
			ymin, ymax = min(ymin, p.Y), max(ymax, p.Y)
		}
	}
	if math.IsInf(xmax, -1) { // no points
		xmin, xmax = 0, 1
		ymax = 1
	}
	if ymax <= 0 && ymin >= 0 {
		ymax = 1
	}
	if xs.log {
		// The data's own range when it holds at least two powers of
		// ten, else widened to whole decades.
		xs.lo, xs.hi = xmin, xmax
		if math.Floor(xmax)-math.Ceil(xmin) < 1 {
			xs.lo, xs.hi = math.Floor(xmin), math.Ceil(xmax)
			if xs.hi == xs.lo {
				xs.hi++
			}
		}
		xs.ticks = logTicks(xs.lo, xs.hi)
	} else {
		if xmax == xmin {
			xmin, xmax = xmin-1, xmax+1
		}
		xs.lo, xs.hi, xs.ticks = niceTicks(xmin, xmax)
	}
	ys.lo, ys.hi, ys.ticks = niceTicks(ymin, ymax)
	return xs, ys
}

// logTicks returns ticks at the powers of ten from 10^lo to 10^hi
// (labelled, thinned to at most about ten) and at 2..9 times them
// (unlabelled) when there are few decades.
func logTicks(lo, hi float64) []tick {
	e0, e1 := int(math.Floor(lo)), int(math.Ceil(hi))
	first := int(math.Ceil(lo))
	step := 1
	for (e1-e0)/step > 10 {
		step++
	}
	minor := e1-e0 <= 6
	var ts []tick
	for e := e0; e <= e1; e++ {
		v := math.Pow(10, float64(e))
		in := func(v float64) bool {
			l := math.Log10(v)
			return l >= lo-1e-9 && l <= hi+1e-9
		}
		if in(v) {
			t := tick{v: v}
			if (e-first)%step == 0 {
				t.label = powerLabel(e)
			}
			ts = append(ts, t)
		}
		if minor {
			for m := 2; m <= 9; m++ {
				if v := float64(m) * v; in(v) {
					ts = append(ts, tick{v: v})
				}
			}
		}
	}
	return ts
}

func powerLabel(e int) string {
	if e >= -4 && e <= 6 {
		return strconv.FormatFloat(math.Pow(10, float64(e)), 'f', -1, 64)
	}
	return "1e" + strconv.Itoa(e)
}

// niceTicks returns a range covering lo..hi whose ends are multiples of
// a step of 1, 2, 2.5 or 5 times a power of ten giving three to five
// intervals, and the ticks at each step.
func niceTicks(lo, hi float64) (float64, float64, []tick) {
	raw := (hi - lo) / 5
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw*(1-1e-9) {
			step = m * mag
			break
		}
	}
	n0 := math.Floor(lo/step + 1e-9)
	n1 := math.Ceil(hi/step - 1e-9)
	decimals := 0
	if step < 1 {
		decimals = int(math.Ceil(-math.Log10(step) - 1e-9))
		if math.Abs(step*math.Pow(10, float64(decimals))-2.5) < 1e-6 {
			decimals++
		}
	} else if math.Mod(step, 1) != 0 { // 2.5
		decimals = 1
	}
	var ts []tick
	for n := n0; n <= n1; n++ {
		v := n * step
		if v == 0 {
			v = 0 // no "-0"
		}
		ts = append(ts, tick{v: v, label: strconv.FormatFloat(v, 'f', decimals, 64)})
	}
	return n0 * step, n1 * step, ts
}
