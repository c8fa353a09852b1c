package stages

import (
	"bytes"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"

	"github.com/condensenet/condensenet/artifacts"
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
	left := plot.New()
	left.Title.Text = "training loss"
	left.X.Label.Text = "epoch"
	right := plot.New()
	right.Title.Text = "top-1 accuracy (%)"
	right.X.Label.Text = "epoch"
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
	p.Title.Text = "confusion matrix (rows: true class, columns: prediction)"
	p.Title.Padding = vg.Points(8)
	h := plotter.NewHeatMap(confusionGrid(conf), reversed{palette.Heat(32, 1)})
	p.Add(h)
	size := vg.Length(k)*0.45*vg.Inch + 2*vg.Inch
	if k <= maxNamedClasses {
		rev := make([]string, k)
		for i, c := range classes {
			rev[k-1-i] = c
		}
		p.NominalX(classes...)
		p.NominalY(rev...)
		p.X.Tick.Label.Rotation = 0.6
		p.X.Tick.Label.XAlign = draw.XRight
	} else {
		// Too many classes to name, or to give each a cell of its own
		// size: 1000 would make an image of 43,000 pixels a side.
		p.X.Label.Text, p.Y.Label.Text = "predicted class index", "true class index (from the top)"
		size = 12 * vg.Inch
	}
	img := vgimg.New(size, size)
	p.Draw(draw.New(img))
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// maxNamedClasses is the most classes the confusion matrix names.
const maxNamedClasses = 40

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
