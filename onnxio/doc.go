// Package onnxio will hold the ONNX message subset this project writes (its
// .proto and generated Go), the exporter, a reader and a small evaluator for
// the ops we emit. It is filled by issue #6; nothing here runs yet.
package onnxio
