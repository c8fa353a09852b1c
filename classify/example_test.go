package classify_test

import (
	"fmt"
	"image"
	"image/color"
	"log"

	"github.com/condensenet/condensenet/classify"
)

func Example() {
	// An exported model: work/export/model.onnx after `pipeline run all`
	// (here a tiny one, trained briefly on synthetic data).
	m, err := classify.Open("testdata/tiny.onnx")
	if err != nil {
		log.Fatal(err)
	}
	// Any image.Image, of any size: imageprep.Open reads PNG and JPEG files.
	img := image.NewRGBA(image.Rect(0, 0, 64, 48))
	for y := range 48 {
		for x := range 64 {
			img.Set(x, y, color.RGBA{R: uint8(4 * x), G: uint8(5 * y), B: 128, A: 255})
		}
	}
	res, err := m.Classify(img)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(m.Classes()), "classes, input", m.InputSize(), "×", m.InputSize())
	for _, p := range res.Top(2) {
		fmt.Printf("%s %.2f\n", p.Class, p.Probability)
	}
	// Output:
	// 10 classes, input 32 × 32
	// ring 0.16
	// square 0.15
}
