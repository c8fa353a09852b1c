package stages

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/condensenet/condensenet/artifacts"
	"github.com/condensenet/condensenet/cifar"
	"github.com/condensenet/condensenet/pipeline"
)

// cifarArchive is a CIFAR-10-format archive of synthetic images.
func cifarArchive(t *testing.T, d *cifar.Dataset) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := cifar.WriteArchive(&buf, cifar.CIFAR10Format, d); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:]) }

// serve serves body at /cifar-10-binary.tar.gz and counts requests.
func serve(t *testing.T, body []byte) (url string, requests *atomic.Int32) {
	requests = new(atomic.Int32)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.URL.Path != "/cifar-10-binary.tar.gz" {
			http.NotFound(w, r)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/cifar-10-binary.tar.gz", requests
}

// runFetch runs the fetch stage alone in workdir.
func runFetch(t *testing.T, workdir string, data DataConfig) (*pipeline.Runner, error) {
	t.Helper()
	return runFetchStage(t, workdir, &Fetch{Data: data})
}

// runFetchStage runs f alone in workdir.
func runFetchStage(t *testing.T, workdir string, f *Fetch) (*pipeline.Runner, error) {
	t.Helper()
	store, err := artifacts.Open(workdir)
	if err != nil {
		t.Fatal(err)
	}
	f.Backoff = func(int) time.Duration { return time.Millisecond }
	r := &pipeline.Runner{Store: store, Stages: []pipeline.Stage{f}, Report: pipeline.Discard}
	return r, r.Run(context.Background(), pipeline.Options{Target: "all"})
}

func TestFetchOverHTTP(t *testing.T) {
	src := cifar.Synthetic(1, 50, 20)
	src.Name, src.Classes = "cifar10", strings.Fields("airplane automobile bird cat deer dog frog horse ship truck")
	body := cifarArchive(t, src)
	url, requests := serve(t, body)
	cache := t.TempDir()
	data := DataConfig{Dataset: "cifar10", URL: url, SHA256: sha(body), CacheDir: cache}

	w1 := t.TempDir()
	r, err := runFetch(t, w1, data)
	if err != nil {
		t.Fatal(err)
	}
	a, err := r.Store.Get("fetch")
	if err != nil {
		t.Fatal(err)
	}
	d, err := artifacts.LoadDataset(a)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != "cifar10" || d.Classes[9] != "truck" || !bytes.Equal(pixels(t, d.Train.Images), src.Train.Images) ||
		!slices.Equal(d.Test.Labels, widen(src.Test.Labels)) {
		t.Errorf("dataset artifact differs from the served archive's contents")
	}
	// A second workdir on the same cache downloads nothing.
	if _, err := runFetch(t, t.TempDir(), data); err != nil {
		t.Fatal(err)
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("%d requests for two workdirs sharing a cache, want 1", n)
	}
	// The URL and cache folder do not change the data: still fresh.
	data.URL, data.CacheDir = url+"?mirror", t.TempDir()
	r.Stages[0].(*Fetch).Data = data
	if s := r.Status()[0]; s.State != pipeline.Fresh {
		t.Errorf("after changing only the URL and cache: %s (%s), want fresh", s.State, s.Reason)
	}
}

// An archive named by its md5 is the same input as when named by its
// sha256: once fetched either way, the other way is fresh too.
func TestFetchChecksumNamesOneArchive(t *testing.T) {
	src := cifar.Synthetic(2, 50, 20)
	src.Name, src.Classes = "cifar10", strings.Fields("airplane automobile bird cat deer dog frog horse ship truck")
	body := cifarArchive(t, src)
	path := filepath.Join(t.TempDir(), "c.tar.gz")
	os.WriteFile(path, body, 0o644)
	m := md5.Sum(body)
	byMD5 := DataConfig{Dataset: "cifar10", URL: path, MD5: hex.EncodeToString(m[:]), CacheDir: t.TempDir()}
	bySHA := DataConfig{Dataset: "cifar10", URL: path, SHA256: sha(body), CacheDir: byMD5.CacheDir}
	r, err := runFetch(t, t.TempDir(), byMD5) // md5 first: sha256 not known before the run
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range map[string]DataConfig{"md5": byMD5, "sha256": bySHA} {
		r.Stages[0].(*Fetch).Data = d
		if s := r.Status()[0]; s.State != pipeline.Fresh {
			t.Errorf("named by its %s: %s (%s), want fresh", name, s.State, s.Reason)
		}
	}
}

// assertNoArtifact checks that a failed fetch left nothing behind that could
// pass for a dataset, not even a temporary folder.
func assertNoArtifact(t *testing.T, workdir string) {
	t.Helper()
	entries, _ := os.ReadDir(workdir)
	for _, e := range entries {
		if e.Name() != ".lock" {
			t.Errorf("workdir holds %s after a failed fetch", e.Name())
		}
	}
}

func TestFetchFailures(t *testing.T) {
	src := cifar.Synthetic(1, 50, 20)
	src.Name = "cifar10"
	good := cifarArchive(t, src)
	bad := cifar.Synthetic(1, 50, 20)
	bad.Train.Labels[33] = 12 // out of range for CIFAR-10
	// WriteArchive checks only the class count, so it writes the bad label.
	malformed := cifarArchive(t, bad)
	truncated := good[:len(good)*2/3]

	for _, tc := range []struct {
		name string
		body []byte
		data func(url string) DataConfig
		want error
		msg  string
	}{
		{"wrong checksum", good, func(url string) DataConfig {
			return DataConfig{Dataset: "cifar10", URL: url, SHA256: sha([]byte("other"))}
		}, cifar.ErrChecksum, "sha256 is " + sha(good)},
		{"truncated archive", truncated, func(url string) DataConfig {
			return DataConfig{Dataset: "cifar10", URL: url, SHA256: sha(truncated)}
		}, cifar.ErrFormat, "truncated"},
		{"malformed record", malformed, func(url string) DataConfig {
			return DataConfig{Dataset: "cifar10", URL: url, SHA256: sha(malformed)}
		}, cifar.ErrFormat, "data_batch_4.bin: record 3: label 12 out of range 0..9"},
		{"404", good, func(url string) DataConfig {
			return DataConfig{Dataset: "cifar10", URL: url + ".missing", SHA256: sha(good)}
		}, nil, "HTTP 404"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, _ := serve(t, tc.body)
			data := tc.data(url)
			data.CacheDir = t.TempDir()
			workdir := t.TempDir()
			_, err := runFetch(t, workdir, data)
			if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("fetch = %v\nwant %v containing %q", err, tc.want, tc.msg)
			}
			assertNoArtifact(t, workdir)
		})
	}
}

func TestFetchLocalWithoutChecksum(t *testing.T) {
	src := cifar.Synthetic(1, 20, 10)
	src.Name = "cifar10"
	body := cifarArchive(t, src)
	p := filepath.Join(t.TempDir(), "c.tar.gz")
	os.WriteFile(p, body, 0o644)
	workdir := t.TempDir()
	_, err := runFetch(t, workdir, DataConfig{Dataset: "cifar10", URL: p})
	if err == nil || !strings.Contains(err.Error(), "no checksum") || !strings.Contains(err.Error(), sha(body)) ||
		!strings.Contains(err.Error(), "official cifar10 archive's md5 is "+cifar.CIFAR10.MD5) || !strings.Contains(err.Error(), "this file is not the official archive") {
		t.Fatalf("fetch without checksum = %v, want a refusal that gives the official md5, says this is another file and names its sha256", err)
	}
	assertNoArtifact(t, workdir)
	if _, err := runFetch(t, workdir, DataConfig{Dataset: "cifar10", URL: "file://" + p, SHA256: sha(body)}); err != nil {
		t.Fatal(err)
	}
}

func TestFetchSynthetic(t *testing.T) {
	workdir := t.TempDir()
	r, err := runFetch(t, workdir, DataConfig{Dataset: "synthetic", SyntheticTrain: 30, SyntheticTest: 10})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := r.Store.Get("fetch")
	d, err := artifacts.LoadDataset(a)
	if err != nil {
		t.Fatal(err)
	}
	want := cifar.Synthetic(0, 30, 10)
	if d.Name != "synthetic" || !bytes.Equal(pixels(t, d.Train.Images), want.Train.Images) || d.Test.Len() != 10 {
		t.Errorf("synthetic artifact differs from cifar.Synthetic(0, 30, 10)")
	}
}
