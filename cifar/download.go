package cifar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/condensenet/condensenet/internal/filelock"
)

// A Meter receives a download's progress.
type Meter interface {
	Add(n int64)
	Done()
}

// A Downloader fetches archives into a cache folder shared by every workdir
// on the machine. Its zero value is not usable: set CacheDir.
type Downloader struct {
	CacheDir string
	Client   *http.Client // nil means http.DefaultClient; timeouts come from StallTimeout
	// Attempts is how many times a transfer is tried before giving up
	// (default 6); each retry resumes where the last one stopped.
	Attempts int
	// Backoff is the wait before retry n (1-based); default 1s, 2s, 4s, ... up to 30s.
	Backoff func(n int) time.Duration
	// StallTimeout aborts an attempt when no byte arrives for this long
	// (default 30s); the next attempt resumes.
	StallTimeout time.Duration
	// Meter, if set, starts a progress meter for a transfer of total bytes
	// (-1 if unknown), done of which are already on disk.
	Meter func(total, done int64) Meter
	// Log, if set, receives notes on retries, waits and cache repairs.
	Log func(msg string)
}

// Get returns the path of a verified copy of src's file: the local file
// itself for a local source, else the cached download, fetching it first if
// needed. It returns a *ChecksumError if the data does not match, and an
// error wrapping ErrUnreachable if the server cannot be reached.
func (d *Downloader) Get(ctx context.Context, src Source) (string, error) {
	if err := src.Check(); err != nil {
		return "", err
	}
	if src.IsLocal() {
		p := src.LocalPath()
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("cifar: %w", err)
		}
		return p, d.verify(src, p)
	}
	u, err := url.Parse(src.URL)
	if err != nil || u.Host == "" || path.Base(u.Path) == "" || path.Base(u.Path) == "/" {
		return "", fmt.Errorf("cifar: invalid URL %q: want http(s)://host/path/file", src.URL)
	}
	dir := filepath.Join(d.CacheDir, src.cacheName())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("cifar: download cache: %w", err)
	}
	unlock, err := d.lock(ctx, dir)
	if err != nil {
		return "", err
	}
	defer unlock()

	final := filepath.Join(dir, path.Base(u.Path))
	if _, err := os.Stat(final); err == nil {
		err := d.verify(src, final)
		if err == nil {
			return final, nil
		}
		var ce *ChecksumError
		if !errors.As(err, &ce) {
			return "", err
		}
		d.log(fmt.Sprintf("cached %s is damaged (%v); downloading it again", final, err))
		if err := os.Remove(final); err != nil {
			return "", fmt.Errorf("cifar: %w", err)
		}
	}
	if err := d.download(ctx, src, final); err != nil {
		return "", err
	}
	return final, nil
}

// verify checks a file against src and records its digests in the
// cache's book (see SHA256Of).
func (d *Downloader) verify(src Source, path string) error {
	got, err := src.verify(path)
	if err == nil {
		record(d.CacheDir, got)
	}
	return err
}

// lock waits for any other process downloading into dir, so that a file is
// downloaded once however many runs want it.
func (d *Downloader) lock(ctx context.Context, dir string) (func(), error) {
	said := false
	for {
		l, err := filelock.TryLock(filepath.Join(dir, ".lock"))
		if err == nil {
			return func() { l.Unlock() }, nil
		}
		var held *filelock.HeldError
		if !errors.As(err, &held) {
			return nil, fmt.Errorf("cifar: download cache: %w", err)
		}
		if !said {
			d.log(fmt.Sprintf("waiting for process %d, which is downloading into %s", held.PID, dir))
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// download fetches src into final through final+".part", resuming and
// retrying, and renames it into place only once its checksum is right.
func (d *Downloader) download(ctx context.Context, src Source, final string) (err error) {
	part := final + ".part"
	defer func() {
		// A failure before any data came leaves nothing worth resuming.
		if st, serr := os.Stat(part); err != nil && serr == nil && st.Size() == 0 {
			os.Remove(part)
		}
	}()
	attempts := d.Attempts
	if attempts <= 0 {
		attempts = 6
	}
	restarted := false
	for n := 1; ; n++ {
		resumed, err := d.attempt(ctx, src.URL, part)
		if err == nil {
			err = d.verify(src, part)
			if err == nil {
				if err := os.Rename(part, final); err != nil {
					return fmt.Errorf("cifar: %w", err)
				}
				return nil
			}
			os.Remove(part) // a wrong file must not be resumed from
			var ce *ChecksumError
			if errors.As(err, &ce) && resumed && !restarted {
				// The pieces may come from different versions of the file:
				// once, start over from the first byte.
				d.log(fmt.Sprintf("resumed download of %s failed its checksum; downloading it whole", src.URL))
				restarted = true
				n = 0
				continue
			}
			return fmt.Errorf("download %s: %w", src.URL, err)
		}
		var perm *permanentError
		var unreachable *unreachableError
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.As(err, &perm):
			return err
		case n >= attempts && errors.As(err, &unreachable):
			return fmt.Errorf("%w: %s: %v (tried %d times)", ErrUnreachable, src.URL, unreachable.err, n)
		case n >= attempts:
			return fmt.Errorf("download %s: %w (tried %d times)", src.URL, err, n)
		}
		wait := d.backoff(n)
		d.log(fmt.Sprintf("download of %s: %v; retry %d of %d in %v", src.URL, err, n, attempts-1, wait))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// A permanentError is a download failure that retrying cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// An unreachableError is a failure to connect: worth retrying, but if it
// persists, the network is probably down.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return e.err.Error() }

var errStalled = errors.New("stalled")

// attempt makes one request, appending to part from its current size. It
// reports whether it resumed a partial file.
func (d *Downloader) attempt(ctx context.Context, rawURL, part string) (resumed bool, err error) {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return false, &permanentError{fmt.Errorf("cifar: %w", err)}
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = &permanentError{fmt.Errorf("cifar: %w", cerr)}
		}
	}()
	offset, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return false, &permanentError{fmt.Errorf("cifar: %w", err)}
	}

	stall := d.StallTimeout
	if stall <= 0 {
		stall = 30 * time.Second
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(stall, func() { cancel(errStalled) })
	defer watchdog.Stop()
	// fail turns a transport error into what it means for us.
	fail := func(err error) error {
		if context.Cause(ctx) == errStalled {
			return fmt.Errorf("no data from the server for %v", stall)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // it repeats the URL, which the caller adds
		}
		var dnsErr *net.DNSError
		var opErr *net.OpError
		switch {
		case errors.As(err, &dnsErr):
			return &permanentError{fmt.Errorf("%w: %s: %v", ErrUnreachable, rawURL, err)}
		case errors.As(err, &opErr) && opErr.Op == "dial":
			return &unreachableError{err}
		}
		return err
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return false, &permanentError{fmt.Errorf("cifar: %w", err)}
	}
	if offset > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	client := d.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, fail(err)
	}
	defer resp.Body.Close()
	watchdog.Reset(stall)

	total := resp.ContentLength
	switch {
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		start, size, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset {
			return false, fmt.Errorf("server resumed at %q, want byte %d", resp.Header.Get("Content-Range"), offset)
		}
		resumed, total = true, size
	case resp.StatusCode == http.StatusOK:
		// No range support (or a fresh start): begin again.
		if err := f.Truncate(0); err != nil {
			return false, &permanentError{fmt.Errorf("cifar: %w", err)}
		}
		offset = 0
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return false, &permanentError{fmt.Errorf("cifar: %w", err)}
		}
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && offset > 0:
		return true, nil // we already have every byte; the checksum decides
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return false, fmt.Errorf("HTTP %s", resp.Status)
	default:
		return false, &permanentError{fmt.Errorf("cifar: %s: HTTP %s", rawURL, resp.Status)}
	}

	var meter Meter
	if d.Meter != nil {
		meter = d.Meter(total, offset)
		defer meter.Done()
	}
	buf := make([]byte, 256<<10)
	got := int64(0)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			watchdog.Reset(stall)
			if _, err := f.Write(buf[:n]); err != nil {
				return resumed, &permanentError{fmt.Errorf("cifar: write %s: %w", part, err)}
			}
			got += int64(n)
			if meter != nil {
				meter.Add(int64(n))
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return resumed, fail(rerr)
		}
	}
	if err := f.Sync(); err != nil {
		return resumed, &permanentError{fmt.Errorf("cifar: write %s: %w", part, err)}
	}
	if resp.ContentLength >= 0 && got != resp.ContentLength {
		return resumed, fmt.Errorf("connection closed after %d of %d bytes", got, resp.ContentLength)
	}
	return resumed, nil
}

// parseContentRange reads "bytes START-END/SIZE"; size is -1 for "*".
func parseContentRange(h string) (start, size int64, ok bool) {
	rest, found := strings.CutPrefix(h, "bytes ")
	if !found {
		return 0, 0, false
	}
	rng, sz, found := strings.Cut(rest, "/")
	s, _, found2 := strings.Cut(rng, "-")
	if !found || !found2 {
		return 0, 0, false
	}
	start, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, 0, false
	}
	size = -1
	if sz != "*" {
		if size, err = strconv.ParseInt(sz, 10, 64); err != nil {
			return 0, 0, false
		}
	}
	return start, size, true
}

func (d *Downloader) backoff(n int) time.Duration {
	if d.Backoff != nil {
		return d.Backoff(n)
	}
	return min(time.Second<<(n-1), 30*time.Second)
}

func (d *Downloader) log(msg string) {
	if d.Log != nil {
		d.Log(msg)
	}
}
