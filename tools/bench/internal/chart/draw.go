package chart

import (
	"image"
	"image/color"
	"image/draw"
	"math"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

var face = basicfont.Face7x13

// glyphH is the height of a line of text, glyphs' cells included.
var glyphH = face.Height

// micro is 'µ', which the 7x13 face lacks: its 'u' with the left stem
// carried down through the descender.
var micro = func() *image.Alpha {
	m := image.NewAlpha(image.Rect(0, 0, face.Width, face.Height))
	if _, mask, mp, _, ok := face.Glyph(fixed.P(0, face.Ascent), 'u'); ok {
		draw.Draw(m, m.Bounds(), mask, mp, draw.Src)
	}
	for y := face.Ascent - 1; y < face.Height; y++ {
		m.SetAlpha(0, y, color.Alpha{0xff})
	}
	return m
}()

// textWidth is the width in pixels of s drawn with drawText.
func textWidth(s string) int {
	return font.MeasureString(face, s).Round()
}

// drawText draws s with the top of its line at y.
func drawText(dst draw.Image, s string, x, y int, c color.RGBA) {
	src := image.NewUniform(c)
	dot := fixed.P(x, y+face.Ascent)
	for _, r := range s {
		var (
			dr   image.Rectangle
			mask image.Image
			mp   image.Point
			adv  fixed.Int26_6
			ok   bool
		)
		if r == 'µ' || r == 'μ' { // micro sign and Greek mu
			dr = micro.Bounds().Add(image.Pt(dot.X.Round(), dot.Y.Round()-face.Ascent))
			mask, mp, adv, ok = micro, image.Point{}, fixed.I(face.Advance), true
		} else {
			dr, mask, mp, adv, ok = face.Glyph(dot, r)
		}
		if ok {
			draw.DrawMask(dst, dr, src, image.Point{}, mask, mp, draw.Over)
		}
		dot.X += adv
	}
}

// drawTextUp draws s rotated a quarter turn anticlockwise, reading
// upwards, with its left (the top of the glyphs) at x and its start at y.
func drawTextUp(dst draw.Image, s string, x, y int, c color.RGBA) {
	w := textWidth(s)
	if w == 0 {
		return
	}
	tmp := image.NewRGBA(image.Rect(0, 0, w, glyphH))
	drawText(tmp, s, 0, 0, c)
	for ty := 0; ty < glyphH; ty++ {
		for tx := 0; tx < w; tx++ {
			if tmp.RGBAAt(tx, ty).A != 0 {
				dst.Set(x+ty, y-tx, c)
			}
		}
	}
}

func hline(img *image.RGBA, x0, x1, y int, c color.RGBA) {
	for x := x0; x <= x1; x++ {
		img.SetRGBA(x, y, c)
	}
}

func vline(img *image.RGBA, x, y0, y1 int, c color.RGBA) {
	for y := y0; y <= y1; y++ {
		img.SetRGBA(x, y, c)
	}
}

func rectOutline(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	hline(img, r.Min.X, r.Max.X-1, r.Min.Y, c)
	hline(img, r.Min.X, r.Max.X-1, r.Max.Y-1, c)
	vline(img, r.Min.X, r.Min.Y, r.Max.Y-1, c)
	vline(img, r.Max.X-1, r.Min.Y, r.Max.Y-1, c)
}

// pen draws thick, optionally dashed, lines; it carries the distance
// drawn so a dash pattern continues from one segment to the next.
type pen struct {
	dist float64
}

// line draws from (x0, y0) to (x1, y1) with Bresenham's algorithm,
// stamping a lineWidth-pixel square brush at each step. Dashed lines
// are on for dashOn pixels and off for dashOff along the path.
func (p *pen) line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, dashed bool) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	steps := max(dx, -dy)
	stepLen := 1.0
	if steps > 0 {
		stepLen = math.Hypot(float64(dx), float64(dy)) / float64(steps)
	}
	e := dx + dy
	for {
		if !dashed || math.Mod(p.dist, dashOn+dashOff) < dashOn {
			stamp(img, x0, y0, lineWidth, c)
		}
		if x0 == x1 && y0 == y1 {
			break
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
		p.dist += stepLen
	}
}

// stamp fills a size x size square at (x, y), centred as nearly as an
// even size allows.
func stamp(img *image.RGBA, x, y, size int, c color.RGBA) {
	r := image.Rect(x-(size-1)/2, y-(size-1)/2, x+size/2+1, y+size/2+1)
	draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
}

// marker draws a square at (x, y): filled, or hollow (a white centre)
// for a dashed series, which tells it apart where lines overlap.
func marker(img *image.RGBA, x, y int, c color.RGBA, hollow bool) {
	stamp(img, x, y, markerSize, c)
	if hollow {
		stamp(img, x, y, markerSize-4, white)
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}
