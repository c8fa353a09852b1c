// Command go-engine classifies PNG or JPEG images with an exported model
// on this project's own engine (package classify): pure Go, no cgo and
// no ONNX runtime.
//
//	cd examples/go-engine && go run . ../../work/export/model.onnx cat.png dog.jpg
//
// The model may also be a workdir's condensed model folder (work/condense).
// It is a module of its own, as a program of yours would be: its go.mod
// requires github.com/condensenet/condensenet and, while that is not
// published, replaces it with a checkout (../..).
package main

import (
	"fmt"
	"image"
	"log"
	"os"

	"github.com/condensenet/condensenet/classify"
	"github.com/condensenet/condensenet/imageprep"
)

func main() {
	if len(os.Args) < 3 {
		log.Fatal("usage: go-engine model.onnx image.png...")
	}
	m, err := classify.Open(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	var imgs []image.Image
	for _, p := range os.Args[2:] {
		img, err := imageprep.Open(p) // refuses images too large to decode
		if err != nil {
			log.Fatal(err) // it names the file
		}
		imgs = append(imgs, img)
	}
	// One image per core at a time; a Model is safe for concurrent use.
	results, err := m.ClassifyAll(imgs)
	if err != nil {
		log.Fatal(err)
	}
	for i, r := range results {
		best := r.Top(1)[0]
		fmt.Printf("%s: %s %.1f%%\n", os.Args[2+i], best.Class, 100*best.Probability)
	}
}
