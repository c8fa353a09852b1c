package stages

import (
	"bytes"

	"gonum.org/v1/plot"
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
