// Package onnxpb holds the generated Go types for the subset of ONNX that
// onnxio writes and reads (see onnx.proto beside this file).
//
// To regenerate onnx.pb.go after editing onnx.proto, with protoc installed
// (Debian: apt-get install protobuf-compiler):
//
//	go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
//	go generate ./onnxio/onnxpb
package onnxpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative onnx.proto
