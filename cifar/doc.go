// Package cifar gets the CIFAR-10 and CIFAR-100 datasets: it downloads the
// official binary archives (resuming interrupted transfers, verifying
// checksums), parses their records, and generates a small synthetic dataset
// of the same shape for offline runs and tests.
//
// The package imports nothing else from this project.
package cifar

import (
	"errors"
	"fmt"
)

// Image shape of every CIFAR example: channels, height, width.
const (
	C = 3
	H = 32
	W = 32
	// ImageSize is the number of bytes of one image: 1024 R, 1024 G, 1024 B, row-major.
	ImageSize = C * H * W
)

var (
	// ErrUnreachable means the download server could not be reached at all
	// (no network, no DNS): a retry will not help, a local copy will.
	ErrUnreachable = errors.New("cifar: server unreachable")
	// ErrChecksum means data did not match its expected checksum.
	ErrChecksum = errors.New("cifar: checksum mismatch")
	// ErrFormat means an archive or record is not what CIFAR's binary
	// format promises.
	ErrFormat = errors.New("cifar: malformed data")
)

// A ChecksumError reports a file whose hash is not the expected one.
type ChecksumError struct {
	Path      string
	Algorithm string // "sha256" or "md5"
	Got, Want string // hex
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("cifar: %s: %s is %s, want %s", e.Path, e.Algorithm, e.Got, e.Want)
}

func (e *ChecksumError) Unwrap() error { return ErrChecksum }

// A FormatError names the archive member and record that broke the format.
type FormatError struct {
	Archive string // the archive's path or URL
	Member  string // "" for the archive as a whole
	Record  int    // -1 when not about one record
	Reason  string
}

func (e *FormatError) Error() string {
	where := e.Archive
	if e.Member != "" {
		where += ": " + e.Member
	}
	if e.Record >= 0 {
		where += fmt.Sprintf(": record %d", e.Record)
	}
	return fmt.Sprintf("cifar: %s: %s", where, e.Reason)
}

func (e *FormatError) Unwrap() error { return ErrFormat }

// A Dataset is an image classification dataset in memory.
type Dataset struct {
	Name    string   // "cifar10", "cifar100" or "synthetic"
	Classes []string // indexed by label
	Train   Split
	Test    Split
}

// A Split is one part of a dataset.
type Split struct {
	Images []byte // (N, C, H, W)
	Labels []byte // (N)
}

// Len returns the number of examples.
func (s *Split) Len() int { return len(s.Labels) }
