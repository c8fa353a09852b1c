package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/condensenet/condensenet/classify"
	"github.com/condensenet/condensenet/internal/pipelinetest"
)

func openTiny() (*classify.Model, error) { return classify.Open("../classify/testdata/tiny.onnx") }

func tinyModel(t *testing.T) *classify.Model {
	t.Helper()
	m, err := openTiny()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func start(t *testing.T, m *classify.Model, o Options) (*httptest.Server, *Server) {
	t.Helper()
	s := New(m, o)
	srv := httptest.NewUnstartedServer(s)
	srv.Config = NewHTTPServer("", s)
	srv.Start()
	t.Cleanup(func() { srv.Close(); s.Close() })
	return srv, s
}

// call sends a request and decodes its JSON answer.
func call(t *testing.T, method, url string, body []byte, header map[string]string) (int, map[string]any, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	head := b
	if n := resp.Header.Get("Inference-Header-Content-Length"); n != "" {
		k, _ := strconv.Atoi(n)
		head = b[:k]
	}
	var v map[string]any
	if err := json.Unmarshal(head, &v); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %q", method, url, resp.StatusCode, b)
	}
	return resp.StatusCode, v, b[len(head):]
}

func pngBytes(img image.Image) []byte {
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

// The health, metadata and readiness endpoints answer as the protocol
// shows them; what is not served is a JSON 404.
func TestHealthAndMetadata(t *testing.T) {
	m := tinyModel(t)
	srv, s := start(t, m, Options{})
	for _, c := range []struct {
		path string
		code int
		want string
	}{
		{"/v2/health/live", 200, `"live":true`},
		{"/v2/health/ready", 200, `"ready":true`},
		{"/v2/models/condensenet/ready", 200, `"ready":true`},
		{"/v2/models/condensenet/versions/1/ready", 200, `"ready":true`},
		{"/v2/models/condensenet", 200, `"inputs":[{"datatype":"FP32","name":"input","shape":[-1,3,32,32]},{"datatype":"BYTES","name":"image","shape":[-1]}]`},
		{"/v2/models/resnet", 404, `unknown model \"resnet\": this server serves \"condensenet\"`},
		{"/v2/models/condensenet/versions/7", 404, `unknown version`},
		{"/v3/anything", 404, `no such endpoint`},
	} {
		code, v, _ := call(t, "GET", srv.URL+c.path, nil, nil)
		b, _ := json.Marshal(v)
		if code != c.code || !strings.Contains(string(b), c.want) {
			t.Errorf("GET %s = %d %s, want %d with %s", c.path, code, b, c.code, c.want)
		}
	}
	s.Drain()
	if code, _, _ := call(t, "GET", srv.URL+"/v2/health/ready", nil, nil); code != 503 {
		t.Errorf("readiness while draining = %d", code)
	}
}

// The images of a request, in either input and either encoding, get the
// probabilities that package classify gives them, and their top classes.
func TestInfer(t *testing.T) {
	m := tinyModel(t)
	srv, _ := start(t, m, Options{Window: time.Millisecond})
	url := srv.URL + "/v2/models/condensenet/infer"
	rng := rand.New(rand.NewPCG(3, 4))
	imgs := []image.Image{pipelinetest.RandomImage(rng, 32, 32), pipelinetest.RandomImage(rng, 40, 23)}
	var want []classify.Result
	var flat []float32
	for _, img := range imgs {
		r, _ := m.Classify(img)
		want = append(want, r)
		flat = append(flat, m.Prepare(img)...)
	}
	check := func(name string, v map[string]any, bin []byte) {
		t.Helper()
		outs, _ := v["outputs"].([]any)
		if v["model_name"] != "condensenet" || v["id"] != "7" || len(outs) != 3 {
			t.Fatalf("%s: %v", name, v)
		}
		for _, o := range outs {
			o := o.(map[string]any)
			var data []any
			if p, ok := o["parameters"].(map[string]any); ok { // binary: decode it as JSON would hold it
				n := int(p["binary_data_size"].(float64))
				chunk := bin[:n]
				bin = bin[n:]
				for len(chunk) > 0 {
					if o["datatype"] == "BYTES" {
						l := binary.LittleEndian.Uint32(chunk)
						data, chunk = append(data, string(chunk[4:4+l])), chunk[4+l:]
					} else {
						data, chunk = append(data, float64(math.Float32frombits(binary.LittleEndian.Uint32(chunk)))), chunk[4:]
					}
				}
			} else {
				data = o["data"].([]any)
			}
			for i, r := range want {
				top := r.Top(3)
				switch o["name"] {
				case "probabilities":
					for c, p := range r.Probabilities {
						if float32(data[i*10+c].(float64)) != float32(p) {
							t.Errorf("%s: image %d class %d: probability %v, want %v", name, i, c, data[i*10+c], float32(p))
						}
					}
				case "labels":
					for j, p := range top {
						if data[i*3+j] != p.Class {
							t.Errorf("%s: image %d label %d: %v, want %s", name, i, j, data[i*3+j], p.Class)
						}
					}
				case "scores":
					if float32(data[i*3].(float64)) != float32(top[0].Probability) {
						t.Errorf("%s: image %d score %v, want %v", name, i, data[i*3], top[0].Probability)
					}
				}
			}
		}
	}
	// FP32 in JSON, nested as people write it.
	nested := make([][]float32, 2)
	for i := range nested {
		nested[i] = flat[i*3072 : (i+1)*3072]
	}
	body, _ := json.Marshal(map[string]any{"id": "7", "parameters": map[string]any{"top_k": 3},
		"inputs": []any{map[string]any{"name": "input", "shape": []int{2, 3, 32, 32}, "datatype": "FP32", "data": nested}}})
	code, v, bin := call(t, "POST", url, body, nil)
	if code != 200 {
		t.Fatalf("FP32 JSON: %d %v", code, v)
	}
	check("FP32 JSON", v, bin)
	// FP32 as binary data, outputs as binary data.
	raw := make([]byte, 0, 4*len(flat))
	for _, f := range flat {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
	}
	head, _ := json.Marshal(map[string]any{"id": "7", "parameters": map[string]any{"top_k": 3, "binary_data_output": true},
		"inputs": []any{map[string]any{"name": "input", "shape": []int{2, 3, 32, 32}, "datatype": "FP32", "parameters": map[string]any{"binary_data_size": len(raw)}}}})
	code, v, bin = call(t, "POST", url, append(head, raw...), map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(head)), "Content-Type": "application/octet-stream"})
	if code != 200 || len(bin) == 0 {
		t.Fatalf("FP32 binary: %d %v", code, v)
	}
	check("FP32 binary", v, bin)
	// Image files: base64 in JSON, and binary data.
	files := []string{base64.StdEncoding.EncodeToString(pngBytes(imgs[0])), base64.StdEncoding.EncodeToString(pngBytes(imgs[1]))}
	body, _ = json.Marshal(map[string]any{"id": "7", "parameters": map[string]any{"top_k": 3},
		"inputs": []any{map[string]any{"name": "image", "shape": []int{2}, "datatype": "BYTES", "data": files}}})
	code, v, bin = call(t, "POST", url, body, nil)
	if code != 200 {
		t.Fatalf("BYTES JSON: %d %v", code, v)
	}
	check("BYTES JSON", v, bin)
	var elems []byte
	for _, img := range imgs {
		p := pngBytes(img)
		elems = binary.LittleEndian.AppendUint32(elems, uint32(len(p)))
		elems = append(elems, p...)
	}
	head, _ = json.Marshal(map[string]any{"id": "7", "parameters": map[string]any{"top_k": 3},
		"inputs":  []any{map[string]any{"name": "image", "shape": []int{2}, "datatype": "BYTES", "parameters": map[string]any{"binary_data_size": len(elems)}}},
		"outputs": []any{map[string]any{"name": "probabilities", "parameters": map[string]any{"binary_data": true}}, map[string]any{"name": "labels"}, map[string]any{"name": "scores"}}})
	code, v, bin = call(t, "POST", url, append(head, elems...), map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(head))})
	if code != 200 {
		t.Fatalf("BYTES binary: %d %v", code, v)
	}
	check("BYTES binary", v, bin)
}

// Bad requests, the specification's own examples among them (for a
// model with other inputs), get a 4xx and a JSON error that says what is
// wrong.
func TestBadRequests(t *testing.T) {
	m := tinyModel(t)
	srv, _ := start(t, m, Options{MaxBody: 1 << 20, MaxImages: 4})
	url := srv.URL + "/v2/models/condensenet/infer"
	specJSON := `{
  "id" : "42",
  "inputs" : [
    { "name" : "input0", "shape" : [ 2, 2 ], "datatype" : "UINT32", "data" : [ 1, 2, 3, 4 ] },
    { "name" : "input1", "shape" : [ 3 ], "datatype" : "BOOL", "data" : [ true ] }
  ],
  "outputs" : [ { "name" : "output0" } ]
}`
	specBinaryHead := `{"model_name":"mymodel","inputs":[{"name":"input0","shape":[2,2],"datatype":"UINT32","parameters":{"binary_data_size":16}}]}`
	unclaimed := `{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","data":["AA=="]}]}`
	torn := `{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":6}}]}`
	image := func(extra string) string {
		return `{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","data":["` + base64.StdEncoding.EncodeToString(pngBytes(image.NewRGBA(image.Rect(0, 0, 4, 4)))) + `"]}]` + extra + `}`
	}
	for _, c := range []struct {
		name, body string
		header     map[string]string
		code       int
		want       string
	}{
		{"the specification's example", specJSON, nil, 400, "2 inputs: give one"},
		{"the specification's binary example", specBinaryHead + strings.Repeat("\x01", 16), map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(specBinaryHead))}, 400, `unknown input "input0"`},
		{"malformed JSON", `{"inputs": [`, nil, 400, "malformed JSON"},
		{"a wrong shape", `{"inputs":[{"name":"input","shape":[1,3,32],"datatype":"FP32","data":[1]}]}`, nil, 400, "want [N, 3, 32, 32]"},
		{"a wrong datatype", `{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP64","data":[1]}]}`, nil, 400, "datatype FP64, want FP32"},
		{"too few values", `{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":[[1,2],[3]]}]}`, nil, 400, "data holds 3 values, the shape 3072"},
		{"strings for numbers", `{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":["a"]}]}`, nil, 400, "want numbers"},
		{"too many images", `{"inputs":[{"name":"image","shape":[5],"datatype":"BYTES","data":[]}]}`, nil, 400, "1 to 4"},
		{"not an image", `{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","data":["R0lGODlh"]}]}`, nil, 400, "element 0: not a PNG or JPEG image (a GIF image)"},
		{"not base64", `{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","data":["%%"]}]}`, nil, 400, "not base64"},
		{"a bad header length", `{}`, map[string]string{"Inference-Header-Content-Length": "99"}, 400, "Inference-Header-Content-Length"},
		{"binary data nobody claims", unclaimed + "xyz", map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(unclaimed))}, 400, "3 bytes follow the JSON"},
		{"a torn element", torn + "\x09\x00\x00\x00ab", map[string]string{"Inference-Header-Content-Length": strconv.Itoa(len(torn))}, 400, "claims 9 bytes, 2 follow"},
		{"an unknown output", image(`,"outputs":[{"name":"logits"}]`), nil, 400, `unknown output "logits"`},
		{"top_k beyond the classes", image(`,"parameters":{"top_k":11}`), nil, 400, "top_k is 11: the model has 10 classes"},
		{"top_k not a number", image(`,"parameters":{"top_k":"five"}`), nil, 400, "not an integer"},
	} {
		code, v, _ := call(t, "POST", url, []byte(c.body), c.header)
		msg, _ := v["error"].(string)
		if code != c.code || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %q, want %d with %q", c.name, code, msg, c.code, c.want)
		}
	}
	// A 1 GB body is cut off at the limit, with 413.
	req, _ := http.NewRequest("POST", url, io.LimitReader(zeros{}, 1<<30))
	req.ContentLength = 1 << 30
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("1 GB body: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 413 || !strings.Contains(string(b), "larger than 1048576 bytes") {
		t.Errorf("1 GB body: %d %s", resp.StatusCode, b)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// A client that sends its request slowly holds a request slot, not a
// core, and only until the read timeout; meanwhile requests beyond the
// limit get 503.
func TestSlowClient(t *testing.T) {
	m := tinyModel(t)
	s := New(m, Options{MaxRequests: 1})
	srv := httptest.NewUnstartedServer(s)
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Start()
	defer func() { srv.Close(); s.Close() }()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /v2/models/condensenet/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"inputs\"")
	time.Sleep(100 * time.Millisecond)
	url := srv.URL + "/v2/models/condensenet/infer"
	ok := []byte(`{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":[` + strings.TrimSuffix(strings.Repeat("0,", 3072), ",") + `]}]}`)
	code, v, _ := call(t, "POST", url, ok, nil)
	if code != 503 || !strings.Contains(v["error"].(string), "busy") {
		t.Errorf("a request beside the stalled one: %d %v", code, v)
	}
	time.Sleep(400 * time.Millisecond) // past the read timeout
	if code, v, _ := call(t, "POST", url, ok, nil); code != 200 {
		t.Errorf("after the stalled client timed out: %d %v", code, v)
	}
	if _, v, _ := call(t, "GET", srv.URL+"/v2/health/live", nil, nil); v["live"] != true {
		t.Error("not live")
	}
}

// A client that sends requests and stops reading the answers holds its
// request slot only until the write timeout; then the server drops the
// connection and serves others again.
func TestClientStopsReading(t *testing.T) {
	m := tinyModel(t)
	s := New(m, Options{MaxRequests: 1})
	srv := httptest.NewUnstartedServer(s)
	srv.Config.WriteTimeout = time.Second
	closed := make(chan string, 100) // the client addresses of the connections the server closed
	srv.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateClosed {
			select {
			case closed <- c.RemoteAddr().String():
			default:
			}
		}
	}
	srv.Start()
	defer func() { srv.Close(); s.Close() }()

	// 256 one-pixel PNGs a request: about 20 kB asked, about 80 kB answered.
	var elems []byte
	p := pngBytes(image.NewGray(image.Rect(0, 0, 1, 1)))
	for range 256 {
		elems = binary.LittleEndian.AppendUint32(elems, uint32(len(p)))
		elems = append(elems, p...)
	}
	head, _ := json.Marshal(map[string]any{"parameters": map[string]any{"top_k": 10},
		"inputs": []any{map[string]any{"name": "image", "shape": []int{256}, "datatype": "BYTES", "parameters": map[string]any{"binary_data_size": len(elems)}}}})
	req := fmt.Sprintf("POST /v2/models/condensenet/infer HTTP/1.1\r\nHost: x\r\nInference-Header-Content-Length: %d\r\nContent-Length: %d\r\n\r\n", len(head), len(head)+len(elems))
	req += string(head) + string(elems)

	// The client asks over and over on one connection, reading nothing,
	// with a small receive buffer, until the answers fill the socket.
	conn, err := (&net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}).Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		for {
			if _, err := io.WriteString(conn, req); err != nil {
				return
			}
		}
	}()

	url := srv.URL + "/v2/models/condensenet/infer"
	ok := []byte(`{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":[` + strings.TrimSuffix(strings.Repeat("0,", 3072), ",") + `]}]}`)
	start := time.Now()
	busy := false
	for {
		code, v, _ := call(t, "POST", url, ok, nil)
		if code == 200 && busy {
			break
		}
		if code == 503 {
			busy = true
		} else if code != 200 {
			t.Fatalf("%d %v", code, v)
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("after %v: busy %v; the client that reads nothing still holds the server", time.Since(start), busy)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("served again %v after the client stopped reading", time.Since(start).Round(time.Millisecond))
	// The server closes the stalled connection itself. (The client must
	// not read to find out: reading would let the server write again, and
	// the writer above keeps asking.)
	deadline := time.After(20 * time.Second)
	for {
		select {
		case addr := <-closed:
			if addr == conn.LocalAddr().String() {
				return
			}
		case <-deadline:
			t.Fatal("the server did not close the connection of the client that reads nothing")
		}
	}
}
