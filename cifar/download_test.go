package cifar

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// server serves body at /cifar-10-binary.tar.gz through handle, which may
// misbehave; it records the Range header of every request.
type server struct {
	*httptest.Server
	body   []byte
	mu     sync.Mutex
	ranges []string
	handle func(s *server, w http.ResponseWriter, r *http.Request, n int)
}

func newServer(t *testing.T, body []byte, handle func(s *server, w http.ResponseWriter, r *http.Request, n int)) *server {
	s := &server{body: body, handle: handle}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		n := len(s.ranges)
		s.mu.Unlock()
		if r.URL.Path != "/cifar-10-binary.tar.gz" {
			http.NotFound(w, r)
			return
		}
		if s.handle != nil {
			s.handle(s, w, r, n)
			return
		}
		s.serve(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// serve answers with Range support.
func (s *server) serve(w http.ResponseWriter, r *http.Request) {
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(s.body))
}

// cut sends the headers of the whole file, half the body, and drops the connection.
func (s *server) cut(w http.ResponseWriter) {
	w.Header().Set("Content-Length", itoa(len(s.body)))
	w.Write(s.body[:len(s.body)/2])
	w.(http.Flusher).Flush()
	conn, _, _ := w.(http.Hijacker).Hijack()
	conn.Close()
}

func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func itoa(n int) string { return strconv.Itoa(n) }

func sha(b []byte) string    { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }
func md5hex(b []byte) string { h := md5.Sum(b); return hex.EncodeToString(h[:]) }

// testBody is what the server serves: only bytes matter here (parsing is
// tested elsewhere), so they are incompressible noise, several reads long.
func testBody(t *testing.T) []byte {
	b := make([]byte, 700_000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func newDownloader(t *testing.T) (*Downloader, *[]string) {
	var logs []string
	return &Downloader{
		CacheDir:     t.TempDir(),
		Backoff:      func(int) time.Duration { return time.Millisecond },
		StallTimeout: 5 * time.Second,
		Log:          func(m string) { logs = append(logs, m) },
	}, &logs
}

func TestDownloadFresh(t *testing.T) {
	body := testBody(t)
	srv := newServer(t, body, nil)
	d, _ := newDownloader(t)
	var total, done, added atomic.Int64
	d.Meter = func(tot, already int64) Meter {
		total.Store(tot)
		done.Store(already)
		return meterFunc(func(n int64) { added.Add(n) })
	}
	src := Source{URL: srv.URL + "/cifar-10-binary.tar.gz", SHA256: sha(body)}
	p, err := d.Get(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	if !bytes.Equal(got, body) {
		t.Fatal("downloaded file differs from the served one")
	}
	if total.Load() != int64(len(body)) || done.Load() != 0 || added.Load() != int64(len(body)) {
		t.Errorf("meter saw total %d, done %d, added %d; want %d, 0, %d", total.Load(), done.Load(), added.Load(), len(body), len(body))
	}
	// A second Get, as from another workdir, uses the cache.
	if p2, err := d.Get(context.Background(), src); err != nil || p2 != p {
		t.Errorf("second Get = %q, %v", p2, err)
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("%d requests for two Gets, want 1", n)
	}
	// A mirror with the same file under the md5 shares nothing but still works.
	if _, err := d.Get(context.Background(), Source{URL: src.URL, MD5: md5hex(body)}); err != nil {
		t.Error(err)
	}
}

type meterFunc func(n int64)

func (f meterFunc) Add(n int64)   { f(n) }
func (f meterFunc) Status(string) {}
func (f meterFunc) Done()         {}

func TestDownloadResumesAfterCut(t *testing.T) {
	body := testBody(t)
	srv := newServer(t, body, func(s *server, w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			s.cut(w)
			return
		}
		s.serve(w, r)
	})
	d, logs := newDownloader(t)
	p, err := d.Get(context.Background(), Source{URL: srv.URL + "/cifar-10-binary.tar.gz", SHA256: sha(body)})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, body) {
		t.Fatal("resumed file differs from the served one")
	}
	reqs := srv.requests()
	if len(reqs) != 2 || reqs[0] != "" || reqs[1] != "bytes="+itoa(len(body)/2)+"-" {
		t.Errorf("requests' Range headers = %q, want none then bytes=%d-", reqs, len(body)/2)
	}
	if len(*logs) != 1 || !strings.Contains((*logs)[0], "retry 1 of 5") {
		t.Errorf("logs = %q, want one retry note", *logs)
	}
}

func TestDownloadResumesAfterProcessDied(t *testing.T) {
	// A .part left by a killed run is continued, not restarted.
	body := testBody(t)
	srv := newServer(t, body, nil)
	d, _ := newDownloader(t)
	src := Source{URL: srv.URL + "/cifar-10-binary.tar.gz", SHA256: sha(body)}
	dir := filepath.Join(d.CacheDir, src.cacheName())
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "cifar-10-binary.tar.gz.part"), body[:1000], 0o644)
	if _, err := d.Get(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if reqs := srv.requests(); len(reqs) != 1 || reqs[0] != "bytes=1000-" {
		t.Errorf("Range headers = %q, want bytes=1000-", reqs)
	}
}

func TestDownloadServerWithoutRanges(t *testing.T) {
	body := testBody(t)
	srv := newServer(t, body, func(s *server, w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			s.cut(w)
			return
		}
		w.Write(s.body) // ignores Range: 200 with the whole file
	})
	d, _ := newDownloader(t)
	p, err := d.Get(context.Background(), Source{URL: srv.URL + "/cifar-10-binary.tar.gz", SHA256: sha(body)})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, body) {
		t.Fatal("file differs after a server ignored the Range request")
	}
}

func TestDownloadWrongChecksum(t *testing.T) {
	body := testBody(t)
	srv := newServer(t, body, nil)
	d, _ := newDownloader(t)
	src := Source{URL: srv.URL + "/cifar-10-binary.tar.gz", SHA256: sha([]byte("something else"))}
	_, err := d.Get(context.Background(), src)
	var ce *ChecksumError
	if !errors.As(err, &ce) || ce.Got != sha(body) || !strings.Contains(err.Error(), srv.URL) {
		t.Fatalf("Get = %v, want a ChecksumError naming the URL and the real sha256", err)
	}
	// Nothing is left that could be mistaken for the file or resumed from.
	entries, _ := os.ReadDir(filepath.Join(d.CacheDir, src.cacheName()))
	for _, e := range entries {
		if e.Name() != ".lock" {
			t.Errorf("cache holds %s after a checksum failure", e.Name())
		}
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("%d requests, want 1 (a fresh download with a wrong checksum is not retried)", n)
	}
}

func TestDownloadDamagedCacheRefetched(t *testing.T) {
	body := testBody(t)
	srv := newServer(t, body, nil)
	d, logs := newDownloader(t)
	src := Source{URL: srv.URL + "/cifar-10-binary.tar.gz", MD5: md5hex(body)}
	p, _ := d.Get(context.Background(), src)
	os.WriteFile(p, body[:10], 0o644)
	if _, err := d.Get(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, body) {
		t.Error("damaged cache entry was not replaced")
	}
	if len(*logs) == 0 || !strings.Contains((*logs)[0], "damaged") {
		t.Errorf("logs = %q, want a note on the damaged cache", *logs)
	}
}

func TestDownloadHTTPErrors(t *testing.T) {
	body := testBody(t)
	t.Run("404", func(t *testing.T) {
		srv := newServer(t, body, nil)
		d, _ := newDownloader(t)
		_, err := d.Get(context.Background(), Source{URL: srv.URL + "/missing.tar.gz", SHA256: sha(body)})
		if err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("Get = %v, want HTTP 404", err)
		}
		if n := len(srv.requests()); n != 1 {
			t.Errorf("%d requests, want 1: a 404 is not retried", n)
		}
	})
	t.Run("503 then ok", func(t *testing.T) {
		srv := newServer(t, body, func(s *server, w http.ResponseWriter, r *http.Request, n int) {
			if n < 3 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			s.serve(w, r)
		})
		d, _ := newDownloader(t)
		if _, err := d.Get(context.Background(), Source{URL: srv.URL + "/cifar-10-binary.tar.gz", SHA256: sha(body)}); err != nil {
			t.Error(err)
		}
	})
	t.Run("always 500", func(t *testing.T) {
		srv := newServer(t, body, func(s *server, w http.ResponseWriter, r *http.Request, n int) {
			http.Error(w, "broken", http.StatusInternalServerError)
		})
		d, _ := newDownloader(t)
		d.Attempts = 3
		_, err := d.Get(context.Background(), Source{URL: srv.URL + "/cifar-10-binary.tar.gz", SHA256: sha(body)})
		if err == nil || !strings.Contains(err.Error(), "500") || len(srv.requests()) != 3 {
			t.Errorf("Get = %v after %d requests, want HTTP 500 after 3", err, len(srv.requests()))
		}
	})
}

func TestDownloadStall(t *testing.T) {
	body := testBody(t)
	release := make(chan struct{})
	defer close(release)
	srv := newServer(t, body, func(s *server, w http.ResponseWriter, r *http.Request, n int) {
		if n == 1 {
			w.Header().Set("Content-Length", itoa(len(s.body)))
			w.Write(s.body[:100])
			w.(http.Flusher).Flush()
			select { // stall until the client gives up
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		s.serve(w, r)
	})
	d, logs := newDownloader(t)
	d.StallTimeout = 200 * time.Millisecond
	start := time.Now()
	p, err := d.Get(context.Background(), Source{URL: srv.URL + "/cifar-10-binary.tar.gz", SHA256: sha(body)})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, body) {
		t.Error("file differs after a stalled attempt")
	}
	if len(*logs) != 1 || !strings.Contains((*logs)[0], "no data from the server for 200ms") {
		t.Errorf("logs = %q, want a stall note", *logs)
	}
	if reqs := srv.requests(); len(reqs) != 2 || reqs[1] != "bytes=100-" {
		t.Errorf("Range headers = %q, want a resume from byte 100", reqs)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %v to give up on a stalled server", el)
	}
}

func TestDownloadCancel(t *testing.T) {
	body := testBody(t)
	srv := newServer(t, body, func(s *server, w http.ResponseWriter, r *http.Request, n int) {
		<-r.Context().Done()
	})
	d, _ := newDownloader(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := d.Get(ctx, Source{URL: srv.URL + "/cifar-10-binary.tar.gz", SHA256: sha(body)})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Get = %v, want the context's error", err)
	}
}

func TestDownloadUnreachable(t *testing.T) {
	d, _ := newDownloader(t)
	_, err := d.Get(context.Background(), Source{URL: "http://cifar.invalid/cifar-10-binary.tar.gz", MD5: CIFAR10.MD5})
	if !errors.Is(err, ErrUnreachable) {
		t.Errorf("Get from an unresolvable host = %v, want ErrUnreachable", err)
	}
}

func TestConcurrentGetsDownloadOnce(t *testing.T) {
	body := testBody(t)
	srv := newServer(t, body, func(s *server, w http.ResponseWriter, r *http.Request, n int) {
		time.Sleep(50 * time.Millisecond) // let the other Get arrive meanwhile
		s.serve(w, r)
	})
	src := Source{URL: srv.URL + "/cifar-10-binary.tar.gz", SHA256: sha(body)}
	cache := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, _ := newDownloader(t)
			d.CacheDir = cache
			_, errs[i] = d.Get(context.Background(), src)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := len(srv.requests()); n != 1 {
		t.Errorf("%d requests from 4 concurrent Gets, want 1", n)
	}
}

func TestLocalSource(t *testing.T) {
	body := testBody(t)
	p := filepath.Join(t.TempDir(), "c.tar.gz")
	os.WriteFile(p, body, 0o644)
	d, _ := newDownloader(t)
	for _, url := range []string{p, "file://" + p} {
		got, err := d.Get(context.Background(), Source{URL: url, SHA256: sha(body)})
		if err != nil || got != p {
			t.Errorf("Get(%s) = %q, %v", url, got, err)
		}
	}
	if _, err := d.Get(context.Background(), Source{URL: p, MD5: md5hex([]byte("x"))}); !errors.Is(err, ErrChecksum) {
		t.Errorf("Get with a wrong md5 = %v, want ErrChecksum", err)
	}
	if _, err := d.Get(context.Background(), Source{URL: p}); err == nil || !strings.Contains(err.Error(), "no checksum") {
		t.Errorf("Get without a checksum = %v", err)
	}
	if _, err := d.Get(context.Background(), Source{URL: p + ".nope", MD5: md5hex(body)}); err == nil {
		t.Error("Get of a missing file succeeded")
	}
	if entries, _ := os.ReadDir(d.CacheDir); len(entries) != 1 || entries[0].Name() != bookDir {
		t.Errorf("a local source was copied into the download cache: %v", entries)
	}
	// The file is in the book: named by its md5, it is known by its sha256.
	if sum, ok := SHA256Of(d.CacheDir, Source{URL: p, MD5: md5hex(body)}); !ok || sum != sha(body) {
		t.Errorf("SHA256Of by md5 = %q, %v; want %s", sum, ok, sha(body))
	}
	if _, ok := SHA256Of(d.CacheDir, Source{URL: p, MD5: md5hex([]byte("other"))}); ok {
		t.Error("SHA256Of knows an md5 never verified")
	}
}

func TestDownloadPartLongerThanFile(t *testing.T) {
	// A .part from another version of the file, longer than this one: the
	// server answers 416, the checksum fails, and the file is fetched whole.
	body := testBody(t)
	srv := newServer(t, body, nil)
	d, _ := newDownloader(t)
	src := Source{URL: srv.URL + "/cifar-10-binary.tar.gz", SHA256: sha(body)}
	dir := filepath.Join(d.CacheDir, src.cacheName())
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "cifar-10-binary.tar.gz.part"), append(bytes.Clone(body), "junk"...), 0o644)
	p, err := d.Get(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, body) {
		t.Error("file differs")
	}
	if reqs := srv.requests(); len(reqs) != 2 || reqs[1] != "" {
		t.Errorf("Range headers = %q, want a resume attempt then a whole download", reqs)
	}
}

func TestDownloadConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/cifar-10-binary.tar.gz"
	srv.Close() // nothing listens there now
	d, logs := newDownloader(t)
	d.Attempts = 3
	_, err := d.Get(context.Background(), Source{URL: url, MD5: CIFAR10.MD5})
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "tried 3 times") {
		t.Errorf("Get with nothing listening = %v, want ErrUnreachable after 3 tries", err)
	}
	if len(*logs) != 2 {
		t.Errorf("logs = %q, want 2 retry notes", *logs)
	}
	// Nothing came, so nothing is kept to resume from.
	if parts, _ := filepath.Glob(filepath.Join(d.CacheDir, "*", "*.part")); len(parts) != 0 {
		t.Errorf("a failed download with no data left %v", parts)
	}
}
