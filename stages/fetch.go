package stages

import (
	"bufio"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/batch"
	"github.com/condensenet/condensenet/cifar"
	"github.com/condensenet/condensenet/imagefolder"
	"github.com/condensenet/condensenet/imageprep"
	"github.com/condensenet/condensenet/model"
	"github.com/condensenet/condensenet/pipeline"
)

// Fetch gets the dataset: downloads and parses a CIFAR archive, or generates
// the synthetic dataset. Its output is an artifacts.Dataset.
type Fetch struct {
	Data DataConfig
	Seed uint64
	// Form is how the network takes pictures, which decides how an image
	// folder's are stored (All sets it from the model).
	Form imageprep.Form
	// Downloader settings a test may shorten; zero values mean defaults.
	StallTimeout time.Duration
	Backoff      func(n int) time.Duration
}

const fetchVersion = 1

func (f *Fetch) Name() string     { return "fetch" }
func (f *Fetch) Version() int     { return fetchVersion }
func (f *Fetch) Inputs() []string { return nil }

// WriteKey names what decides the dataset's bytes: for a download, the
// archive's content by its sha256 (the URL is only where to find it, so a
// mirror is the same dataset, and an archive named by its md5 is known by
// its sha256 once verified, see cifar.SHA256Of); for synthetic data, the
// seed and sizes.
func (f *Fetch) WriteKey(w io.Writer) {
	d := f.Data
	if root, ok := FolderPath(d.Dataset); ok {
		// The folder by content, not by where it is.
		fmt.Fprintf(w, "data.dataset folder\ndata.image_size %d\ndata.mean %v\ndata.std %v\ndata.strict %v\nimageprep %d %s\n", f.imageSize(), d.Mean, d.Std, d.Strict, imageprep.Version, f.Form)
		if l, err := f.listFolder(root); err != nil {
			fmt.Fprintf(w, "data.folder unreadable: %v\n", err) // Run says so
		} else {
			fmt.Fprintf(w, "data.folder sha256 %s\n", l.Fingerprint())
		}
		return
	}
	fmt.Fprintf(w, "data.dataset %s\n", d.Dataset)
	if d.Dataset == "synthetic" {
		fmt.Fprintf(w, "seed %d\ndata.synthetic_train %d\ndata.synthetic_test %d\n", f.Seed, d.SyntheticTrain, d.SyntheticTest)
		return
	}
	src := f.source()
	cache, _ := f.cacheDir()
	if sum, ok := cifar.SHA256Of(cache, src); ok {
		fmt.Fprintf(w, "data.archive sha256 %s\n", sum)
		return
	}
	fmt.Fprintf(w, "data.archive md5 %s\n", strings.ToLower(src.MD5))
}

// cacheDir is the download cache: data.cache_dir, or the user cache folder.
func (f *Fetch) cacheDir() (string, error) {
	if f.Data.CacheDir != "" {
		return f.Data.CacheDir, nil
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no download cache folder (%v): set data.cache_dir", err)
	}
	return filepath.Join(dir, "condensenet", "downloads"), nil
}

// source is the archive to fetch: the official one unless a URL is given.
func (f *Fetch) source() cifar.Source {
	d := f.Data
	src := cifar.CIFAR10
	if d.Dataset == "cifar100" {
		src = cifar.CIFAR100
	}
	if d.URL != "" || d.SHA256 != "" || d.MD5 != "" {
		src = cifar.Source{URL: d.URL, SHA256: d.SHA256, MD5: d.MD5}
		if src.URL == "" {
			src.URL = cifar.CIFAR10.URL
			if d.Dataset == "cifar100" {
				src.URL = cifar.CIFAR100.URL
			}
		}
	}
	return src
}

func (f *Fetch) Run(ctx context.Context, env *pipeline.Env) (pipeline.Output, error) {
	if f.Data.Dataset == "" {
		return nil, fmt.Errorf("%w: no data.dataset: this preset trains on an image folder; give --dataset folder:PATH, the folder holding train/<class>/ and val/<class>/ (ImageNet's layout)", ErrConfig)
	}
	if root, ok := FolderPath(f.Data.Dataset); ok {
		d, err := f.readFolder(ctx, env, root)
		if err != nil {
			return nil, err // not a nil *Dataset in an interface
		}
		return d, nil
	}
	var d *cifar.Dataset
	if f.Data.Dataset == "synthetic" {
		d = cifar.Synthetic(f.Seed, f.Data.SyntheticTrain, f.Data.SyntheticTest)
	} else {
		var err error
		if d, err = f.download(ctx, env); err != nil {
			return nil, err
		}
	}
	return &artifacts.Dataset{
		Name: d.Name, Classes: d.Classes, C: cifar.C, H: cifar.H, W: cifar.W, // normalised as CIFAR-10 (see artifacts.Dataset)
		Train: artifacts.Split{Images: artifacts.Bytes(d.Train.Images), Labels: widen(d.Train.Labels)},
		Test:  artifacts.Split{Images: artifacts.Bytes(d.Test.Images), Labels: widen(d.Test.Labels)},
	}, nil
}

// listFolder lists an image folder, with its files' sums remembered in
// the download cache (folders/), so that only changed files are read
// again when the stage's key is computed.
func (f *Fetch) listFolder(root string) (*imagefolder.Listing, error) {
	var sums *imagefolder.Sums
	if cache, err := f.cacheDir(); err == nil {
		abs, _ := filepath.Abs(root)
		id := sha256.Sum256([]byte(abs))
		sums = imagefolder.OpenSums(filepath.Join(cache, "folders", hex.EncodeToString(id[:8])+".json"))
	}
	l, err := imagefolder.List(root, sums)
	if err != nil {
		return nil, err
	}
	sums.Save() // a cache: failing to write it loses nothing
	return l, nil
}

// availableMemory returns the bytes of memory this process can take: the
// system's (Linux's MemAvailable), or less where a cgroup limits it, or 0
// where nothing says. A test replaces it.
var availableMemory = func() int64 {
	have := memAvailable("/proc/meminfo")
	if c, ok := cgroupAvailable("/proc/self/cgroup", "/sys/fs/cgroup"); ok && (have == 0 || c < have) {
		have = c
	}
	return have
}

// memAvailable reads MemAvailable from meminfo, or 0.
func memAvailable(meminfo string) int64 {
	b, err := os.ReadFile(meminfo)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			var kb int64
			if _, err := fmt.Sscanf(strings.TrimSpace(rest), "%d kB", &kb); err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

// cgroupAvailable returns what the tightest memory limit of this
// process's cgroup and its ancestors leaves (cgroup v2's memory.max less
// memory.current; v1's limit less usage), and whether any limits it.
func cgroupAvailable(self, root string) (int64, bool) {
	b, err := os.ReadFile(self)
	if err != nil {
		return 0, false
	}
	left, limited := int64(0), false
	note := func(limit, usage string) {
		l, err1 := readInt(limit)
		u, err2 := readInt(usage)
		if err1 == nil && err2 == nil && l < 1<<60 && (!limited || l-u < left) { // v1 says "no limit" with a huge number
			left, limited = max(0, l-u), true
		}
	}
	for line := range strings.Lines(string(b)) {
		parts := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "": // v2: the unified hierarchy
			for dir := filepath.Join(root, parts[2]); strings.HasPrefix(dir, root); dir = filepath.Dir(dir) {
				note(filepath.Join(dir, "memory.max"), filepath.Join(dir, "memory.current"))
				if dir == root {
					break
				}
			}
		case slices.Contains(strings.Split(parts[1], ","), "memory"): // v1
			dir := filepath.Join(root, "memory", parts[2])
			note(filepath.Join(dir, "memory.limit_in_bytes"), filepath.Join(dir, "memory.usage_in_bytes"))
		}
	}
	return left, limited
}

// readInt reads a file holding one integer ("max" is not one).
func readInt(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// freeDisk returns the bytes free to this user in the file system that
// holds dir, or 0 where it cannot tell. A test replaces it.
var freeDisk = diskFree

// widen turns byte labels into a Dataset artifact's.
func widen(labels []byte) []uint16 {
	out := make([]uint16, len(labels))
	for i, l := range labels {
		out[i] = uint16(l)
	}
	return out
}

// imageSize is the side images are prepared at (All sets it to the
// network's input).
func (f *Fetch) imageSize() int { return cmp.Or(f.Data.ImageSize, cifar.H) }

// readFolder prepares an image-folder dataset: every image decoded once,
// resized, and normalised by the training split's statistics unless the
// configuration gives them.
func (f *Fetch) readFolder(ctx context.Context, env *pipeline.Env, root string) (*artifacts.Dataset, error) {
	l, err := f.listFolder(root)
	if err != nil {
		return nil, err
	}
	for _, p := range l.Skipped {
		env.Report.Warn(env.Stage, p.String())
	}
	for _, w := range thinClasses(l) {
		env.Report.Warn(env.Stage, w)
	}
	size := f.imageSize()
	side := f.Form.Side(size)
	// The prepared images go to a scratch file, then into the artifact:
	// no stage holds them in memory, and a folder far larger than memory
	// is prepared and trained on.
	scratch := cmp.Or(env.StateDir, os.TempDir())
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return nil, err
	}
	need := int64(len(l.Train)+len(l.Test)) * int64(3*side*side)
	if free := freeDisk(scratch); free > 0 && 2*need > free {
		return nil, fmt.Errorf("%d images of %d×%d take %.1f GB, written twice (prepared, then stored), and %s has %.1f GB free: free some space or use a --workdir on a larger disk",
			len(l.Train)+len(l.Test), side, side, float64(need)/1e9, scratch, float64(free)/1e9)
	}
	prog := env.Progress("prepare images", int64(len(l.Train)+len(l.Test)), pipeline.Images)
	// Decoding takes at most half the memory there is (a 50-megapixel
	// image needs 0.6 GB; most take a few MB each, on every core).
	prep := &imagefolder.Preparer{Form: f.Form, Size: size, Budget: availableMemory() / 2, Done: func() { prog.Add(1) }}
	d := &artifacts.Dataset{Name: "folder:" + filepath.Base(filepath.Clean(root)), Classes: l.Classes, C: 3, H: side, W: side, Mean: f.Data.Mean, Std: f.Data.Std}
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	stats := imagefolder.NewStats(side * side)
	train, bad, err := prepareSplit(ctx, prep, l.Train, scratch, stats)
	if err != nil {
		prog.Done()
		return nil, err
	}
	d.Train = train
	test, badTest, err := prepareSplit(ctx, prep, l.Test, scratch, nil)
	prog.Done()
	if err != nil {
		return nil, err
	}
	d.Test = test
	if bad = append(bad, badTest...); len(bad) > 0 {
		list := make([]string, 0, 5)
		for _, p := range bad[:min(5, len(bad))] {
			list = append(list, p.String())
		}
		more := ""
		if len(bad) > len(list) {
			more = fmt.Sprintf("; and %d more", len(bad)-len(list))
		}
		if f.Data.Strict {
			return nil, fmt.Errorf("%d of %d images in %s cannot be read (data.strict refuses them): %s%s",
				len(bad), len(l.Train)+len(l.Test), root, strings.Join(list, "; "), more)
		}
		env.Report.Warn(env.Stage, fmt.Sprintf("%d images cannot be read and are left out (data.strict refuses them instead): %s%s", len(bad), strings.Join(list, "; "), more))
	}
	for i, n := range d.PerClass(&d.Train) {
		if n == 0 {
			return nil, fmt.Errorf("class %s has no readable training images in %s", l.Classes[i], root)
		}
	}
	if d.Test.Len() == 0 {
		return nil, fmt.Errorf("no readable images in %s", filepath.Join(root, l.TestDir))
	}
	if d.Mean == nil {
		d.Mean, d.Std = stats.Normalization()
	}
	ok = true
	return d, nil
}

// prepareSplit prepares files into an unnamed file in dir (removed as it
// is made, so that nothing is left behind whatever happens), also written
// to stats if given.
func prepareSplit(ctx context.Context, prep *imagefolder.Preparer, files []imagefolder.File, dir string, stats io.Writer) (artifacts.Split, []imagefolder.Problem, error) {
	fh, err := os.CreateTemp(dir, "images-")
	if err != nil {
		return artifacts.Split{}, nil, err
	}
	os.Remove(fh.Name())
	buf := bufio.NewWriterSize(fh, 1<<20)
	var w io.Writer = buf
	if stats != nil {
		w = io.MultiWriter(buf, stats)
	}
	labels, bad, err := prep.Write(ctx, files, w)
	if err == nil {
		err = buf.Flush()
	}
	var im artifacts.Images
	if err == nil {
		im, err = artifacts.ImageFile(fh)
	}
	if err != nil {
		fh.Close()
		return artifacts.Split{}, nil, err
	}
	return artifacts.Split{Images: im, Labels: labels}, bad, nil
}

func (f *Fetch) download(ctx context.Context, env *pipeline.Env) (*cifar.Dataset, error) {
	src := f.source()
	if src.SHA256 == "" && src.MD5 == "" {
		return nil, f.missingChecksum(src)
	}
	cache, err := f.cacheDir()
	if err != nil {
		return nil, err
	}
	name := path.Base(src.URL)
	dl := &cifar.Downloader{
		CacheDir:     cache,
		StallTimeout: f.StallTimeout,
		Backoff:      f.Backoff,
		Meter: func(total, done int64) cifar.Meter {
			p := env.Progress("download "+name, total, pipeline.Bytes)
			p.Add(done)
			return p
		},
		Log: func(msg string) { env.Report.Warn(env.Stage, msg) },
	}
	p, err := dl.Get(ctx, src)
	if err != nil {
		return nil, err
	}
	format := cifar.CIFAR10Format
	if f.Data.Dataset == "cifar100" {
		format = cifar.CIFAR100Format
	}
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return nil, err
	}
	prog := env.Progress("read "+filepath.Base(p), st.Size(), pipeline.Bytes)
	defer prog.Done()
	return cifar.ReadArchive(&progressReader{r: fh, p: prog, ctx: ctx}, p, format)
}

// missingChecksum refuses unverified data. For a local file it compares
// the file with the official archive's published md5: a copy of that is
// named as one, with the flag that accepts it; any other file is not the
// official archive, and its own checksum is given only for a user who
// trusts where it came from.
func (f *Fetch) missingChecksum(src cifar.Source) error {
	official := cifar.CIFAR10
	if f.Data.Dataset == "cifar100" {
		official = cifar.CIFAR100
	}
	err := fmt.Errorf("data.url %s has no checksum: set data.sha256 or data.md5 (--data-sha256, --data-md5; data is never used unverified). The official %s archive's md5 is %s",
		src.URL, f.Data.Dataset, official.MD5)
	if !src.IsLocal() {
		return err
	}
	sha, md5, herr := cifar.FileSums(src.LocalPath())
	switch {
	case herr != nil:
		return fmt.Errorf("%w; reading the file: %v", err, herr)
	case md5 == official.MD5:
		return fmt.Errorf("%w, and this file is the official archive: add --data-md5 %s", err, md5)
	}
	return fmt.Errorf("%w, and this file is not the official archive (its md5 is %s). If you trust where it came from, its sha256 is %s (--data-sha256)", err, md5, sha)
}

// batcher batches split of ds for a network of configuration cfg:
// normalised as ds says, cropped and augmented in the regime of cfg's form
// (CIFAR's, or ImageNet's for a strided stem, as the official code
// chooses).
func batcher(ds *artifacts.Dataset, split *artifacts.Split, n int, cfg *model.Config) *batch.Batcher {
	return &batch.Batcher{Images: split.Images, Labels: split.Labels, Size: cfg.Input(), Side: ds.H, Batch: n, Mean: ds.Mean, Std: ds.Std,
		Resized: cfg.Form() == imageprep.CentreCrop}
}

// progressReader reports bytes read and stops reading once ctx is done.
type progressReader struct {
	r   io.Reader
	p   pipeline.Progress
	ctx context.Context
}

func (pr *progressReader) Read(b []byte) (int, error) {
	if err := pr.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := pr.r.Read(b)
	pr.p.Add(int64(n))
	return n, err
}

// thinClasses words the classes a folder gives too little to learn or to
// measure: one training image, or no test images (whose accuracy then
// goes unmeasured).
func thinClasses(l *imagefolder.Listing) []string {
	train, test := make([]int, len(l.Classes)), make([]int, len(l.Classes))
	for _, f := range l.Train {
		train[f.Label]++
	}
	for _, f := range l.Test {
		test[f.Label]++
	}
	var out []string
	for i, c := range l.Classes {
		if train[i] == 1 {
			out = append(out, fmt.Sprintf("class %s has a single training image: the network can hardly learn it", c))
		}
		if test[i] == 0 {
			out = append(out, fmt.Sprintf("class %s has no images in %s: its accuracy will not be measured", c, filepath.Join(l.Root, l.TestDir, c)))
		}
	}
	return out
}
