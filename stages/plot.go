package stages

import (
	"bytes"
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/tfevents"
)

// plotCurves draws the training curves as a PNG: loss on the left, train
// and test top-1 accuracy on the right, both against the epoch.
func plotCurves(metrics []artifacts.Metric) ([]byte, error) {
	var loss, train, test plotter.XYs
	for _, m := range metrics {
		x := float64(m.Epoch)
		loss = append(loss, plotter.XY{X: x, Y: m.Loss})
		train = append(train, plotter.XY{X: x, Y: 100 * m.TrainTop1})
		if m.TestTop1 != nil {
			test = append(test, plotter.XY{X: x, Y: 100 * *m.TestTop1})
		}
	}
	return plotLines("epoch", loss, train, test)
}

// PlotEvents draws the curves of a training run that is still going from
// its TensorBoard events, as plotCurves draws a finished run's, against
// the iteration: the epochs' running means, and each evaluation.
func PlotEvents(events []tfevents.Event) ([]byte, error) {
	var loss, train, test plotter.XYs
	for _, e := range events {
		x := float64(e.Step)
		for _, s := range e.Scalars {
			switch s.Tag {
			case "train/loss":
				loss = append(loss, plotter.XY{X: x, Y: s.Value})
			case "train/top1":
				train = append(train, plotter.XY{X: x, Y: s.Value})
			case "test/top1":
				test = append(test, plotter.XY{X: x, Y: s.Value})
			}
		}
	}
	return plotLines("iteration", loss, train, test)
}

// plotLines draws loss on the left and top-1 accuracy in percent on the
// right against x.
func plotLines(x string, loss, train, test plotter.XYs) ([]byte, error) {
	left := plot.New()
	left.Title.Text = "training loss"
	left.X.Label.Text = x
	right := plot.New()
	right.Title.Text = "top-1 accuracy (%)"
	right.X.Label.Text = x
	right.Legend.Top = true
	right.Legend.Left = true
	if err := addLine(left, "", loss, 0); err != nil {
		return nil, err
	}
	if err := addLine(right, "train", train, 0); err != nil {
		return nil, err
	}
	if err := addLine(right, "test", test, 1); err != nil {
		return nil, err
	}
	// Room around the points: a lone evaluation sat on the frame's edge.
	for _, p := range []*plot.Plot{left, right} {
		pad := 0.08 * max(p.Y.Max-p.Y.Min, 1e-3)
		p.Y.Min, p.Y.Max = p.Y.Min-pad, p.Y.Max+pad
	}
	img := vgimg.New(12*vg.Inch, 4.5*vg.Inch)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Inch / 4, PadY: vg.Inch / 8, PadTop: vg.Inch / 8, PadBottom: vg.Inch / 8, PadLeft: vg.Inch / 8, PadRight: vg.Inch / 4}
	canvases := plot.Align([][]*plot.Plot{{left, right}}, tiles, dc)
	left.Draw(canvases[0][0])
	right.Draw(canvases[0][1])
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// addLine adds a line with points, in the i-th palette colour, if there
// are any points.
func addLine(p *plot.Plot, name string, xys plotter.XYs, i int) error {
	if len(xys) == 0 {
		return nil
	}
	l, pts, err := plotter.NewLinePoints(xys)
	if err != nil {
		return err
	}
	l.Color, pts.Color = plotutil.Color(i), plotutil.Color(i)
	p.Add(l, pts)
	if name != "" {
		p.Legend.Add(name, l, pts)
	}
	return nil
}

// plotConfusion draws a confusion matrix as a PNG heat map: true classes
// top to bottom, predictions left to right, each row shaded by its share.
func plotConfusion(conf [][]int, classes []string) ([]byte, error) {
	k := len(classes)
	p := plot.New()
	p.Title.Text = "confusion matrix: share of each true class"
	p.Title.Padding = vg.Points(8)
	h := plotter.NewHeatMap(confusionGrid(conf), reversed{palette.Heat(32, 1)})
	h.Min, h.Max = 0, 1 // the colour scale is the same for every matrix
	p.Add(h)
	p.X.Label.Text, p.Y.Label.Text = "predicted class", "true class"
	// Wide enough for the title and the scale's line whatever the count.
	size := max(vg.Length(k)*0.45*vg.Inch+2*vg.Inch, 5.5*vg.Inch)
	if k <= maxNamedClasses {
		rev := make([]string, k)
		for i, c := range classes {
			rev[k-1-i] = c
		}
		p.NominalX(classes...)
		p.NominalY(rev...)
		p.X.Tick.Label.Rotation = 0.6
		p.X.Tick.Label.XAlign = draw.XRight
		if k <= maxCountedClasses {
			counts, err := cellCounts(conf)
			if err != nil {
				return nil, err
			}
			p.Add(counts)
		}
	} else {
		// Too many classes to name, or to give each a cell of its own
		// size: 1000 would make an image of 43,000 pixels a side.
		p.X.Label.Text, p.Y.Label.Text = "predicted class index", "true class index (from the top)"
		size = 12 * vg.Inch
	}
	img := vgimg.New(size, size+vg.Inch/3)
	dc := draw.New(img)
	legend := dc
	legend.Max.Y = legend.Min.Y + vg.Inch/3
	dc.Min.Y += vg.Inch / 3
	p.Draw(dc)
	drawScale(legend)
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxNamedClasses is the most classes the confusion matrix names, and
// maxCountedClasses the most whose cells show their counts.
const maxNamedClasses, maxCountedClasses = 40, 20

// cellCounts labels each cell of conf with its count, in the heat map's
// coordinates (row 0 at the top).
func cellCounts(conf [][]int) (*plotter.Labels, error) {
	k := len(conf)
	var xys plotter.XYLabels
	for r, row := range conf {
		for c, n := range row {
			xys.XYs = append(xys.XYs, plotter.XY{X: float64(c), Y: float64(k - 1 - r)})
			xys.Labels = append(xys.Labels, fmt.Sprint(n))
		}
	}
	l, err := plotter.NewLabels(xys)
	if err != nil {
		return nil, err
	}
	for i := range l.TextStyle {
		l.TextStyle[i].XAlign, l.TextStyle[i].YAlign = draw.XCenter, draw.YCenter
	}
	return l, nil
}

// drawScale draws the heat map's colour scale in c: the palette from 0 to
// 100% of a true class's examples.
func drawScale(c draw.Canvas) {
	colors := reversed{palette.Heat(32, 1)}.Colors()
	left, width := c.Min.X+1.8*vg.Inch, c.Max.X-c.Min.X-2.6*vg.Inch
	step := width / vg.Length(len(colors))
	for i, col := range colors {
		x := left + vg.Length(i)*step
		c.FillPolygon(col, []vg.Point{{X: x, Y: c.Min.Y + 4}, {X: x + step, Y: c.Min.Y + 4}, {X: x + step, Y: c.Max.Y - 8}, {X: x, Y: c.Max.Y - 8}})
	}
	sty := draw.TextStyle{Color: color.Black, Font: font.From(plot.DefaultFont, vg.Points(9)), Handler: plot.DefaultTextHandler, YAlign: draw.YCenter}
	mid := (c.Min.Y + c.Max.Y - 4) / 2
	sty.XAlign = draw.XRight
	c.FillText(sty, vg.Point{X: left - 4, Y: mid}, "share of the row: 0%")
	sty.XAlign = draw.XLeft
	c.FillText(sty, vg.Point{X: left + width + 4, Y: mid}, "100%")
}

// confusionGrid presents a confusion matrix to the heat map, each cell as
// its share of the true class's examples, row 0 at the top.
type confusionGrid [][]int

func (g confusionGrid) Dims() (c, r int) { return len(g), len(g) }
func (g confusionGrid) X(c int) float64  { return float64(c) }
func (g confusionGrid) Y(r int) float64  { return float64(r) }
func (g confusionGrid) Z(c, r int) float64 {
	row := g[len(g)-1-r]
	total := 0
	for _, v := range row {
		total += v
	}
	return float64(row[c]) / float64(max(total, 1))
}

// reversed lists a palette's colours the other way round (pale for 0).
type reversed struct{ p palette.Palette }

func (r reversed) Colors() []color.Color {
	c := slices.Clone(r.p.Colors())
	slices.Reverse(c)
	return c
}
