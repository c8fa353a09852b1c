// Package imagefolder reads an image classification dataset laid out as
// folders, the common layout of torchvision's ImageFolder:
//
//	ROOT/train/<class>/*.png|*.jpg|*.jpeg
//	ROOT/val/<class>/...    (or ROOT/test/<class>/...)
//
// Class names are the train folder's subfolders, sorted. Each image is
// decoded once (with imageprep's pixel limit), prepared as the network's form
// stores it (a square of imageprep.Form.Side) and
// stored as bytes. A split's images are ordered by class and then by
// content, so renaming a file changes nothing, and the content hash of the
// whole set (Listing.Fingerprint) says when anything else changed.
package imagefolder

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/condensenet/condensenet/imageprep"
	"github.com/condensenet/condensenet/internal/atomicfile"
	"github.com/condensenet/condensenet/internal/semaphore"
)

// A File is one image file of a split.
type File struct {
	Path  string
	Label int
	Sum   [32]byte // sha256 of the file's bytes
}

// A Problem is a file left out, and why.
type Problem struct {
	Path   string
	Reason string
}

func (p Problem) String() string { return p.Path + ": " + p.Reason }

// A Listing is what a dataset folder holds.
type Listing struct {
	Root        string
	Classes     []string
	Train, Test []File // ordered by label, then content
	TestDir     string // "val" or "test"
	// Skipped are files not read: links that lead out of the folder, and
	// links to folders.
	Skipped []Problem
}

// ErrLayout is wrapped by the errors for a folder without the layout.
var ErrLayout = errors.New("not an image-folder dataset")

func layoutError(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrLayout, fmt.Sprintf(format, a...))
}

// Classes returns the class names of the dataset at root: the folders in
// root/train, sorted.
func Classes(root string) ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(root, "train"))
	if err != nil {
		return nil, layoutError("%v (want %s/train/<class>/ and %s/val/<class>/ folders of PNG or JPEG images)", err, root, root)
	}
	var classes []string
	for _, e := range ents {
		if e.IsDir() || e.Type()&os.ModeSymlink != 0 && isDir(filepath.Join(root, "train", e.Name())) {
			classes = append(classes, e.Name())
		}
	}
	if len(classes) == 0 {
		return nil, layoutError("%s has no class folders", filepath.Join(root, "train"))
	}
	if len(classes) > 1<<16 {
		return nil, fmt.Errorf("%s has %d class folders: at most 65536 are supported", filepath.Join(root, "train"), len(classes))
	}
	slices.Sort(classes)
	return classes, nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// List finds the images of the dataset at root and hashes their content,
// taking the sums of files unchanged since sums saw them (sums may be nil).
func List(root string, sums *Sums) (*Listing, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, layoutError("%v", err)
	}
	classes, err := Classes(root)
	if err != nil {
		return nil, err
	}
	l := &Listing{Root: root, Classes: classes}
	for _, dir := range []string{"val", "test"} {
		if isDir(filepath.Join(root, dir)) {
			l.TestDir = dir
			break
		}
	}
	if l.TestDir == "" {
		return nil, layoutError("no %s or %s folder: put some images of each class there, to measure accuracy on", filepath.Join(root, "val"), filepath.Join(root, "test"))
	}
	if l.Train, err = l.split(real, "train", true, sums); err != nil {
		return nil, err
	}
	if l.Test, err = l.split(real, l.TestDir, false, sums); err != nil {
		return nil, err
	}
	return l, nil
}

// split lists root/dir's images, every class needing some with all.
func (l *Listing) split(real, dir string, all bool, sums *Sums) ([]File, error) {
	ents, err := os.ReadDir(filepath.Join(l.Root, dir))
	if err != nil {
		return nil, layoutError("%v", err)
	}
	var files []File
	for _, e := range ents {
		p := filepath.Join(l.Root, dir, e.Name())
		if !e.IsDir() && !(e.Type()&os.ModeSymlink != 0 && isDir(p)) {
			continue // a stray file beside the class folders
		}
		label, ok := slices.BinarySearch(l.Classes, e.Name())
		if !ok {
			return nil, layoutError("%s is not a class of %s (its classes: %s)", p, filepath.Join(l.Root, "train"), strings.Join(l.Classes, ", "))
		}
		if !l.inside(real, p) {
			continue
		}
		n := len(files)
		if files, err = l.class(real, files, p, label); err != nil {
			return nil, err
		}
		if len(files) == n {
			return nil, layoutError("class folder %s has no PNG or JPEG images", p)
		}
	}
	if err := hash(files, sums); err != nil {
		return nil, err
	}
	if all {
		seen := map[int]bool{}
		for _, f := range files {
			seen[f.Label] = true
		}
		for i, c := range l.Classes {
			if !seen[i] {
				return nil, layoutError("class folder %s has no PNG or JPEG images", filepath.Join(l.Root, dir, c))
			}
		}
	}
	if len(files) == 0 {
		return nil, layoutError("%s has no images", filepath.Join(l.Root, dir))
	}
	slices.SortFunc(files, func(a, b File) int {
		if a.Label != b.Label {
			return a.Label - b.Label
		}
		return strings.Compare(string(a.Sum[:]), string(b.Sum[:]))
	})
	return files, nil
}

// class adds the images in folder dir (and its subfolders) to files. A
// class folder may itself be a link (split has checked that it leads
// inside the dataset): its files are found where it leads and named
// under dir.
func (l *Listing) class(real string, files []File, dir string, label int) ([]File, error) {
	top, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return files, err
	}
	err = filepath.WalkDir(top, func(q string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(top, q)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, rel)
		link := d.Type()&os.ModeSymlink != 0
		if link && isDir(p) {
			if l.inside(real, p) {
				l.Skipped = append(l.Skipped, Problem{p, "a link to a folder inside the dataset: not followed, so that no image counts twice"})
			}
			return nil
		}
		switch strings.ToLower(filepath.Ext(p)) {
		case ".png", ".jpg", ".jpeg":
		default:
			return nil
		}
		if d.IsDir() || link && !l.inside(real, p) {
			return nil
		}
		files = append(files, File{Path: p, Label: label})
		return nil
	})
	return files, err
}

// hash fills in the files' sums, on every core, from sums where it knows
// them.
func hash(files []File, sums *Sums) error {
	errs := make([]error, len(files))
	forEach(len(files), func(i int) { files[i].Sum, errs[i] = sums.sum(files[i].Path) })
	return errors.Join(errs...)
}

// forEach runs f(i) for every i < n on every core, each taking the next
// i as it finishes one.
func forEach(n int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				f(i)
			}
		})
	}
	wg.Wait()
}

// inside reports whether p, a link or not, leads to somewhere within the
// dataset's folder (real, with links resolved); if not it is skipped.
func (l *Listing) inside(real, p string) bool {
	abs, err := filepath.Abs(p) // real is absolute; p is under the root as given
	if err != nil {
		return false
	}
	to, err := filepath.EvalSymlinks(abs)
	if err == nil {
		if rel, err := filepath.Rel(real, to); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return true
		}
	}
	l.Skipped = append(l.Skipped, Problem{p, "a link that leads out of the dataset's folder: not followed"})
	return false
}

// Sums remembers files' sha256 by path, size and modification time, so
// that listing a large folder again reads only what changed. A file
// rewritten with the same size and time stamp would go unnoticed, as in
// git's index; deleting the cache file forgets everything.
type Sums struct {
	path  string
	mu    sync.Mutex
	known map[string]knownSum
	used  map[string]bool // the files asked for: only these are saved
	dirty bool
}

type knownSum struct {
	Size    int64  `json:"size"`
	ModTime int64  `json:"mtime_ns"`
	Sum     string `json:"sha256"`
}

// OpenSums reads the sums kept at path; a missing or damaged file is an
// empty cache.
func OpenSums(path string) *Sums {
	s := &Sums{path: path, known: map[string]knownSum{}, used: map[string]bool{}}
	if b, err := os.ReadFile(path); err == nil {
		if json.Unmarshal(b, &s.known) != nil {
			s.known = map[string]knownSum{}
		}
	}
	return s
}

// Save writes the sums back, atomically, if any changed.
func (s *Sums) Save() error {
	if s == nil || !s.dirty && len(s.used) == len(s.known) {
		return nil
	}
	s.mu.Lock()
	keep := map[string]knownSum{}
	for p := range s.used {
		keep[p] = s.known[p]
	}
	b, err := json.Marshal(keep)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(s.path, b)
}

// sum returns p's sha256, from the cache if p is unchanged.
func (s *Sums) sum(p string) ([32]byte, error) {
	var sum [32]byte
	st, err := os.Stat(p)
	if err != nil {
		return sum, err
	}
	if s != nil {
		s.mu.Lock()
		k, ok := s.known[p]
		s.used[p] = true
		s.mu.Unlock()
		if ok && k.Size == st.Size() && k.ModTime == st.ModTime().UnixNano() {
			if b, err := hex.DecodeString(k.Sum); err == nil && len(b) == 32 {
				return [32]byte(b), nil
			}
		}
	}
	if sum, err = hashFile(p); err != nil || s == nil {
		return sum, err
	}
	s.mu.Lock()
	s.known[p] = knownSum{Size: st.Size(), ModTime: st.ModTime().UnixNano(), Sum: hex.EncodeToString(sum[:])}
	s.dirty = true
	s.mu.Unlock()
	return sum, nil
}

func hashFile(p string) ([32]byte, error) {
	var sum [32]byte
	f, err := os.Open(p)
	if err != nil {
		return sum, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// Fingerprint is a hash of what the dataset holds: its classes and each
// split's images by content. Renaming files does not change it.
func (l *Listing) Fingerprint() string {
	h := sha256.New()
	fmt.Fprintf(h, "classes %q\n", l.Classes)
	for _, s := range []struct {
		name  string
		files []File
	}{{"train", l.Train}, {"test", l.Test}} {
		fmt.Fprintf(h, "%s %d\n", s.name, len(s.files))
		for _, f := range s.files {
			fmt.Fprintf(h, "%d %x\n", f.Label, f.Sum)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// A Preparer decodes image files and prepares them as Form stores them
// for inputs of Size (imageprep.Form.Stored), on every core.
type Preparer struct {
	Form imageprep.Form
	Size int
	// Budget bounds the memory that decoding takes at once, in bytes,
	// summed over the cores: each image counts its file and DecodeBytes
	// per pixel its header declares, and waits for room (one larger than
	// the whole budget waits to decode alone). 0: no bound.
	Budget int64
	// Done, if set, is called after each image (one call at a time).
	Done func()
}

// DecodeBytes is the most memory a pixel takes while an image is
// prepared: decoded (up to 8 bytes, a 16-bit PNG's) and converted to RGBA.
const DecodeBytes = 12

// Write prepares files and writes the readable ones' images to w, in the
// order of files, returning their labels; an image that cannot be read is
// left out and returned as a Problem. Memory stays bounded whatever the
// number of files: Budget for decoding, and a window of prepared images
// waiting for the slowest one before them.
func (p *Preparer) Write(ctx context.Context, files []File, w io.Writer) ([]uint16, []Problem, error) {
	side := p.Form.Side(p.Size)
	n := 3 * side * side
	workers := runtime.GOMAXPROCS(0)
	window := 4 * workers
	slots := make([]byte, window*n)
	type result struct {
		ready  bool
		reason string // why the image cannot be read; "" if it can
	}
	results := make([]result, window)
	room := semaphore.New(p.Budget)
	var (
		mu      sync.Mutex
		cond    = sync.NewCond(&mu)
		next    int  // the next file a worker takes
		written int  // files before this one are written (or left out)
		stop    bool // the writer has returned
		wg      sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				i := next
				next++
				for i < len(files) && i >= written+window && !stop {
					cond.Wait() // its slot still holds an image to write
				}
				quit := stop || i >= len(files)
				mu.Unlock()
				if quit {
					return
				}
				reason := ""
				if ctx.Err() == nil { // once cancelled, every slot is skipped
					reason = p.prepare(files[i].Path, slots[i%window*n:(i%window+1)*n], room)
				}
				mu.Lock()
				results[i%window] = result{ready: true, reason: reason}
				cond.Broadcast()
				mu.Unlock()
			}
		})
	}
	defer func() {
		mu.Lock()
		stop = true
		cond.Broadcast()
		mu.Unlock()
		wg.Wait()
	}()
	var labels []uint16
	var bad []Problem
	for i, f := range files {
		mu.Lock()
		for !results[i%window].ready {
			cond.Wait()
		}
		r := results[i%window]
		mu.Unlock()
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if r.reason != "" {
			bad = append(bad, Problem{f.Path, r.reason})
		} else {
			if _, err := w.Write(slots[i%window*n : (i%window+1)*n]); err != nil {
				return nil, nil, err
			}
			labels = append(labels, uint16(f.Label))
		}
		if p.Done != nil {
			p.Done()
		}
		mu.Lock()
		results[i%window] = result{}
		written++
		cond.Broadcast()
		mu.Unlock()
	}
	return labels, bad, nil
}

// prepare reads one image into dst, or returns why it cannot.
func (p *Preparer) prepare(path string, dst []byte, room *semaphore.Weighted) string {
	b, err := imageprep.ReadFile(path)
	if err != nil {
		return imageprep.Reason(err)
	}
	cost := int64(len(b)) + DecodeBytes*imageprep.Pixels(b)
	room.Acquire(cost)
	defer room.Release(cost)
	img, err := imageprep.Decode(b)
	if err != nil {
		return err.Error()
	}
	copy(dst, p.Form.Stored(img, p.Size))
	return ""
}

// Stats accumulates the per-channel mean and standard deviation of the
// images (N, 3, H, W) written to it, scaled to [0, 1], as they stream past.
type Stats struct {
	hw      int64
	pos     int64
	sum, sq [3]float64
}

// NewStats returns Stats for images of hw pixels.
func NewStats(hw int) *Stats { return &Stats{hw: int64(hw)} }

func (s *Stats) Write(b []byte) (int, error) {
	for _, v := range b {
		c := s.pos / s.hw % 3
		x := float64(v) / 255
		s.sum[c] += x
		s.sq[c] += x * x
		s.pos++
	}
	return len(b), nil
}

// Normalization returns the mean and standard deviation of each channel.
func (s *Stats) Normalization() (mean, std []float32) {
	n := float64(s.pos / 3)
	for c := range 3 {
		m := s.sum[c] / n
		mean = append(mean, float32(m))
		std = append(std, float32(max(1e-6, math.Sqrt(max(0, s.sq[c]/n-m*m)))))
	}
	return mean, std
}
