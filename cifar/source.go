package cifar

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/condensenet/condensenet/internal/atomicfile"
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
	_, err := s.verify(path)
	return err
}

// sums are a file's digests, hex.
type sums struct{ sha256, md5 string }

// FileSums returns the sha256 and md5 of the file at path, hex.
func FileSums(path string) (sha256, md5 string, err error) {
	s, err := Source{}.verify(path)
	return s.sha256, s.md5, err
}

// verify is Verify, returning both of the file's digests when it passes.
func (s Source) verify(path string) (sums, error) {
	f, err := os.Open(path)
	if err != nil {
		return sums{}, err
	}
	defer f.Close()
	sh, mh := sha256.New(), md5.New()
	if _, err := io.Copy(io.MultiWriter(sh, mh), f); err != nil {
		return sums{}, fmt.Errorf("cifar: read %s: %w", path, err)
	}
	got := sums{hex.EncodeToString(sh.Sum(nil)), hex.EncodeToString(mh.Sum(nil))}
	for _, c := range []struct{ algo, want, got string }{{"sha256", s.SHA256, got.sha256}, {"md5", s.MD5, got.md5}} {
		if c.want != "" && c.got != strings.ToLower(c.want) {
			return sums{}, &ChecksumError{Path: path, Algorithm: c.algo, Got: c.got, Want: strings.ToLower(c.want)}
		}
	}
	return got, nil
}

// The download cache keeps a book of the files it has verified: for each
// md5, the sha256 of the same bytes. It lets a source named by md5 be
// known as the same archive as one named by sha256.
const bookDir = "checksums"

// SHA256Of returns the sha256 of the archive a source names: its own, or
// the one the cache's book holds for its md5 once a file with that md5 has
// been verified; ok is false when neither is known.
func SHA256Of(cacheDir string, s Source) (sum string, ok bool) {
	if s.SHA256 != "" {
		return strings.ToLower(s.SHA256), true
	}
	b, err := os.ReadFile(filepath.Join(cacheDir, bookDir, "md5-"+strings.ToLower(s.MD5)))
	if err != nil || len(b) != 64 {
		return "", false
	}
	return string(b), true
}

// record writes a verified file's digests into the cache's book; a book
// that cannot be written costs only the equivalence.
func record(cacheDir string, got sums) {
	dir := filepath.Join(cacheDir, bookDir)
	if os.MkdirAll(dir, 0o755) == nil {
		atomicfile.WriteFile(filepath.Join(dir, "md5-"+got.md5), []byte(got.sha256))
	}
}
