//go:build cgo

// Command go classifies one CIFAR image with an exported model in ONNX
// Runtime through github.com/yalue/onnxruntime_go.
//
//	ONNXRUNTIME_LIB=libonnxruntime.so.1 go run ./examples/go model.onnx image.u8
package main

import (
	"encoding/json"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/condensenet/condensenet/onnxio"
)

func main() {
	if len(os.Args) != 3 {
		log.Fatal("usage: go run ./examples/go model.onnx image.u8")
	}
	// The metadata tells the class names and how to normalise the input.
	b, err := os.ReadFile(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	m, err := onnxio.Unmarshal(b)
	if err != nil {
		log.Fatal(err)
	}
	meta := onnxio.Summarize(m).Metadata
	var classes []string
	if err := json.Unmarshal([]byte(meta["classes"]), &classes); err != nil {
		log.Fatalf("no class names in the model's metadata: %v", err)
	}
	mean, std := floats(meta["normalization_mean"]), floats(meta["normalization_std"])
	raw := strings.Contains(meta["input_layout"], "raw")

	// The image: 3072 bytes, channel by channel (CHW), as CIFAR stores it.
	img, err := os.ReadFile(os.Args[2])
	if err != nil || len(img) != 3072 {
		log.Fatalf("%s: want a 3072-byte CIFAR image (%v)", os.Args[2], err)
	}
	x := make([]float32, 3072)
	for i, v := range img {
		x[i] = float32(v) / 255
		if !raw {
			c := i / 1024
			x[i] = (x[i] - mean[c]) / std[c]
		}
	}

	ort.SetSharedLibraryPath(os.Getenv("ONNXRUNTIME_LIB"))
	if err := ort.InitializeEnvironment(); err != nil {
		log.Fatal(err)
	}
	defer ort.DestroyEnvironment()
	in, err := ort.NewTensor(ort.NewShape(1, 3, 32, 32), x)
	if err != nil {
		log.Fatal(err)
	}
	out, err := ort.NewEmptyTensor[float32](ort.NewShape(1, int64(len(classes))))
	if err != nil {
		log.Fatal(err)
	}
	s, err := ort.NewAdvancedSession(os.Args[1], []string{"input"}, []string{"logits"}, []ort.Value{in}, []ort.Value{out}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Destroy()
	if err := s.Run(); err != nil {
		log.Fatal(err)
	}
	logits := out.GetData()
	best := 0
	for i, v := range logits {
		if v > logits[best] {
			best = i
		}
	}
	fmt.Printf("%s (class %d, logit %.4f)\n", classes[best], best, logits[best])
}

// floats parses the metadata's "[0.4914 0.4824 0.4467]".
func floats(s string) []float32 {
	var out []float32
	for _, f := range strings.Fields(strings.Trim(s, "[]")) {
		v, err := strconv.ParseFloat(f, 32)
		if err != nil {
			log.Fatalf("metadata value %q: %v", s, err)
		}
		out = append(out, float32(v))
	}
	return out
}
