// Package enginetest holds the cases that every backend's tests share.
package enginetest

import (
	"fmt"

	"github.com/condensenet/condensenet/engine"
)

// ConvShapes are the convolutions a backend must get right: pointwise and
// not, grouped, strided, padded, a non-square kernel, views into wider
// buffers, each lowering the CPU backend picks, and CondenseNet's own.
var ConvShapes = []engine.ConvShape{
	{N: 2, H: 5, W: 5, C: 6, K: 4, R: 1, S: 1, Stride: 1, Pad: 0, G: 1, LdIn: 6, LdOut: 4},
	{N: 2, H: 5, W: 4, C: 8, K: 4, R: 1, S: 1, Stride: 1, Pad: 0, G: 2, LdIn: 11, LdOut: 7}, // prefix of a wider buffer
	{N: 2, H: 6, W: 6, C: 8, K: 4, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: 8, LdOut: 9},
	{N: 1, H: 7, W: 6, C: 6, K: 6, R: 3, S: 3, Stride: 2, Pad: 1, G: 3, LdIn: 6, LdOut: 6},
	{N: 2, H: 6, W: 5, C: 3, K: 5, R: 3, S: 2, Stride: 2, Pad: 0, G: 1, LdIn: 4, LdOut: 5},
	{N: 1, H: 4, W: 4, C: 4, K: 4, R: 1, S: 1, Stride: 2, Pad: 1, G: 2, LdIn: 4, LdOut: 4},
	{N: 1, H: 5, W: 4, C: 16, K: 16, R: 3, S: 3, Stride: 1, Pad: 1, G: 2, LdIn: 18, LdOut: 17}, // 8 outputs per group: im2col on the CPU
	{N: 2, H: 4, W: 5, C: 24, K: 8, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: 24, LdOut: 9},   // shifted GEMMs on the CPU, runs of 8
	{N: 4, H: 8, W: 8, C: 32, K: 8, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: 32, LdOut: 40},  // CondenseNet's 3×3 into a block buffer
	{N: 2, H: 3, W: 16, C: 32, K: 8, R: 3, S: 3, Stride: 1, Pad: 1, G: 4, LdIn: 48, LdOut: 40}, // rows of 16: planes by register transposes on the CPU
	{N: 4, H: 8, W: 8, C: 3, K: 16, R: 3, S: 3, Stride: 1, Pad: 1, G: 1, LdIn: 3, LdOut: 56},   // the stem
	{N: 2, H: 5, W: 6, C: 4, K: 6, R: 2, S: 3, Stride: 1, Pad: 0, G: 2, LdIn: 5, LdOut: 6},     // unpadded, not square
	{N: 1, H: 4, W: 3, C: 2, K: 4, R: 3, S: 3, Stride: 1, Pad: 2, G: 2, LdIn: 2, LdOut: 4},     // padded past the kernel's middle
	{N: 2, H: 5, W: 7, C: 40, K: 32, R: 1, S: 1, Stride: 1, Pad: 0, G: 4, LdIn: 44, LdOut: 35}, // the condensed first block's grouped 1×1
	{N: 1, H: 4, W: 5, C: 24, K: 64, R: 1, S: 1, Stride: 1, Pad: 0, G: 4, LdIn: 24, LdOut: 64}, // and the second's
	{N: 2, H: 5, W: 6, C: 24, K: 48, R: 1, S: 1, Stride: 1, Pad: 0, G: 4, LdIn: 24, LdOut: 50}, // 12 outputs a group: blocks of 8 and 4
	{N: 1, H: 6, W: 7, C: 12, K: 24, R: 1, S: 1, Stride: 1, Pad: 0, G: 4, LdIn: 12, LdOut: 24}, // 6 a group
}

// ConvName names a shape in test messages.
func ConvName(s engine.ConvShape) string {
	return fmt.Sprintf("N%d_%dx%dx%d_K%d_%dx%d_s%d_p%d_g%d", s.N, s.H, s.W, s.C, s.K, s.R, s.S, s.Stride, s.Pad, s.G)
}
