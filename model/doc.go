// Package model will hold CondenseNet: its configuration and presets, the
// training network with learned group convolutions, the condensed network,
// the conversion between them, FLOPs and parameter counting, and weight
// files. It is filled by issues #4 and #5; nothing here runs yet.
package model
