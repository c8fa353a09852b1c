package cifar

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
)

// A Source is where an archive comes from and how to check it. At least one
// checksum must be set.
type Source struct {
	URL    string // http(s)://, file:// or a plain path
	SHA256 string // hex, may be empty if MD5 is set
	MD5    string // hex, may be empty if SHA256 is set
}

// The official archives (University of Toronto).
var (
	CIFAR10 = Source{
		URL: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
		MD5: "c32a1d4ab5d03f1284b67883e8d87530",
	}
	CIFAR100 = Source{
		URL: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
		MD5: "03b5dce01913d631647c71ecec9e9cb8",
	}
)

// IsLocal reports whether the source is a file on this machine.
func (s Source) IsLocal() bool {
	return !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://")
}

// LocalPath returns the file path of a local source.
func (s Source) LocalPath() string { return strings.TrimPrefix(s.URL, "file://") }

// Check validates the checksums' form.
func (s Source) Check() error {
	if s.URL == "" {
		return fmt.Errorf("cifar: no source URL")
	}
	if s.SHA256 == "" && s.MD5 == "" {
		return fmt.Errorf("cifar: %s: no checksum given; data is never used unverified", s.URL)
	}
	for _, c := range []struct {
		algo, hex string
		n         int
	}{{"sha256", s.SHA256, 64}, {"md5", s.MD5, 32}} {
		if c.hex != "" && (len(c.hex) != c.n || strings.Trim(strings.ToLower(c.hex), "0123456789abcdef") != "") {
			return fmt.Errorf("cifar: invalid %s %q: want %d hex digits", c.algo, c.hex, c.n)
		}
	}
	return nil
}

// cacheName is the folder a source's download is cached in: named by the
// checksum, so mirrors of one file share it and different files never do.
func (s Source) cacheName() string {
	if s.SHA256 != "" {
		return "sha256-" + strings.ToLower(s.SHA256)[:16]
	}
	return "md5-" + strings.ToLower(s.MD5)[:16]
}

// Verify checks the file at path against every checksum the source gives.
// It returns a *ChecksumError on a mismatch.
func (s Source) Verify(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sh, mh := sha256.New(), md5.New()
	if _, err := io.Copy(io.MultiWriter(sh, mh), f); err != nil {
		return fmt.Errorf("cifar: read %s: %w", path, err)
	}
	for _, c := range []struct {
		algo, want string
		h          hash.Hash
	}{{"sha256", s.SHA256, sh}, {"md5", s.MD5, mh}} {
		if got := hex.EncodeToString(c.h.Sum(nil)); c.want != "" && got != strings.ToLower(c.want) {
			return &ChecksumError{Path: path, Algorithm: c.algo, Got: got, Want: strings.ToLower(c.want)}
		}
	}
	return nil
}
