package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"

	"github.com/condensenet/condensenet/imageprep"
)

// The protocol's inference request, as far as this model reads it.
type inferRequest struct {
	ID         string         `json:"id,omitempty"`
	Parameters params         `json:"parameters,omitempty"`
	Inputs     []requestInput `json:"inputs"`
	Outputs    []struct {
		Name       string `json:"name"`
		Parameters params `json:"parameters,omitempty"`
	} `json:"outputs,omitempty"`
}

type requestInput struct {
	Name       string          `json:"name"`
	Shape      []int64         `json:"shape"`
	Datatype   string          `json:"datatype"`
	Parameters params          `json:"parameters,omitempty"`
	Data       json.RawMessage `json:"data,omitempty"`
}

type responseOutput struct {
	Name       string         `json:"name"`
	Shape      []int64        `json:"shape"`
	Datatype   string         `json:"datatype"`
	Parameters map[string]any `json:"parameters,omitempty"`
	Data       any            `json:"data,omitempty"`
	binary     []byte
}

type params map[string]json.RawMessage

// int returns the integer parameter name, or def.
func (p params) int(name string, def int64) (int64, error) {
	raw, ok := p[name]
	if !ok {
		return def, nil
	}
	var v int64
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, fmt.Errorf("parameter %s is %s, not an integer", name, raw)
	}
	return v, nil
}

// bool returns the boolean parameter name, or false.
func (p params) bool(name string) (bool, error) {
	raw, ok := p[name]
	if !ok {
		return false, nil
	}
	var v bool
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, fmt.Errorf("parameter %s is %s, not true or false", name, raw)
	}
	return v, nil
}

// A requestError is a 4xx answer.
type requestError struct {
	code int
	msg  string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

var outputNames = []string{"probabilities", "labels", "scores"}

func (s *Server) infer(w http.ResponseWriter, r *http.Request) {
	select {
	case s.inflight <- struct{}{}:
		defer func() { <-s.inflight }()
	default:
		w.Header().Set("Retry-After", "1")
		fail(w, http.StatusServiceUnavailable, fmt.Sprintf("busy: %d requests in flight (serve --max-requests); try again", s.o.MaxRequests))
		return
	}
	out, err := s.answer(w, r)
	if err != nil {
		var re *requestError
		if errors.As(err, &re) {
			fail(w, re.code, re.msg)
		} else {
			fail(w, http.StatusInternalServerError, err.Error())
		}
		return
	}
	out.write(w)
}

// A response is an answer's JSON object and the binary data after it.
type response struct {
	header []byte
	binary []byte
}

func (rs *response) write(w http.ResponseWriter) {
	if len(rs.binary) == 0 {
		w.Header().Set("Content-Type", "application/json")
		w.Write(rs.header)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Inference-Header-Content-Length", strconv.Itoa(len(rs.header)))
	w.Write(rs.header)
	w.Write(rs.binary)
}

func (s *Server) answer(w http.ResponseWriter, r *http.Request) (*response, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.o.MaxBody))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &requestError{http.StatusRequestEntityTooLarge, fmt.Sprintf("the request is larger than %d bytes (serve --max-body)", s.o.MaxBody)}
		}
		return nil, badRequest("reading the request: %v", err)
	}
	head, bin := body, []byte(nil)
	if h := r.Header.Get("Inference-Header-Content-Length"); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n < 0 || n > len(body) {
			return nil, badRequest("Inference-Header-Content-Length is %q, not a length within the body's %d bytes", h, len(body))
		}
		head, bin = body[:n], body[n:]
	}
	var req inferRequest
	if err := json.Unmarshal(head, &req); err != nil {
		return nil, badRequest("malformed JSON: %v", err)
	}
	if len(req.Inputs) != 1 {
		return nil, badRequest("%d inputs: give one, %s", len(req.Inputs), s.inputsText())
	}
	k, err := req.Parameters.int("top_k", 5)
	if err != nil {
		return nil, badRequest("%v", err)
	}
	classes := s.m.Classes()
	if k < 1 || k > int64(len(classes)) {
		return nil, badRequest("top_k is %d: the model has %d classes", k, len(classes))
	}
	allBinary, err := req.Parameters.bool("binary_data_output")
	if err != nil {
		return nil, badRequest("%v", err)
	}
	wanted := map[string]bool{}
	for _, o := range req.Outputs {
		if !slices.Contains(outputNames, o.Name) {
			return nil, badRequest("unknown output %q: the model gives %q", o.Name, outputNames)
		}
		b, err := o.Parameters.bool("binary_data")
		if err != nil {
			return nil, badRequest("output %s: %v", o.Name, err)
		}
		wanted[o.Name] = b || allBinary
	}
	if len(req.Outputs) == 0 {
		for _, name := range outputNames {
			wanted[name] = allBinary
		}
	}
	in := &req.Inputs[0]
	if len(in.Shape) == 0 || in.Shape[0] < 1 || in.Shape[0] > int64(s.o.MaxImages) {
		return nil, badRequest("input %s: shape %v: the first dimension is the number of images, 1 to %d (serve --max-images)", in.Name, in.Shape, s.o.MaxImages)
	}
	// Prepared images are what a request's memory grows with: at most
	// MaxImages of them across the requests in flight.
	s.images.Acquire(in.Shape[0])
	defer s.images.Release(in.Shape[0])
	xs, err := s.inputs(in, bin)
	if err != nil {
		return nil, err
	}
	jobs := make([]*job, len(xs))
	for i, x := range xs {
		jobs[i] = &job{x: x, done: make(chan struct{})}
		s.queue <- jobs[i]
	}
	for _, j := range jobs {
		<-j.done
		if j.err != nil {
			return nil, j.err
		}
	}
	return s.outputs(&req, jobs, classes, int(k), wanted)
}

func (s *Server) inputsText() string {
	n := s.m.InputSize()
	return fmt.Sprintf(`"input" (FP32 [N, 3, %d, %d], prepared and normalised as an exported model takes it) or "image" (BYTES [N], PNG or JPEG files)`, n, n)
}

// inputs returns the request's images, prepared for the network.
func (s *Server) inputs(in *requestInput, bin []byte) ([][]float32, error) {
	size, err := in.Parameters.int("binary_data_size", -1)
	if err != nil {
		return nil, badRequest("input %s: %v", in.Name, err)
	}
	var data []byte // the input's binary data, if it comes so
	if size >= 0 {
		if size != int64(len(bin)) {
			return nil, badRequest("input %s: binary_data_size is %d, and %d bytes follow the JSON", in.Name, size, len(bin))
		}
		data = bin
	} else if len(bin) > 0 {
		return nil, badRequest("%d bytes follow the JSON, and no input has binary_data_size", len(bin))
	}
	n := int(in.Shape[0])
	switch in.Name {
	case "input":
		side := int64(s.m.InputSize())
		if in.Datatype != "FP32" {
			return nil, badRequest("input input: datatype %s, want FP32", in.Datatype)
		}
		if !slices.Equal(in.Shape[1:], []int64{3, side, side}) {
			return nil, badRequest("input input: shape %v, want [N, 3, %d, %d]", in.Shape, side, side)
		}
		per := int(3 * side * side)
		var flat []float32
		if data != nil {
			if len(data) != 4*n*per {
				return nil, badRequest("input input: %d bytes of binary data for shape %v, want %d", len(data), in.Shape, 4*n*per)
			}
			flat = make([]float32, n*per)
			for i := range flat {
				flat[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
			}
		} else if flat, err = numbers(in.Data, n*per); err != nil {
			return nil, badRequest("input input: %v", err)
		}
		xs := make([][]float32, n)
		for i := range xs {
			xs[i] = flat[i*per : (i+1)*per]
		}
		return xs, nil
	case "image":
		if in.Datatype != "BYTES" || len(in.Shape) != 1 {
			return nil, badRequest("input image: datatype %s, shape %v; want BYTES [N], a PNG or JPEG file each", in.Datatype, in.Shape)
		}
		files, err := byteElements(in.Data, data, n)
		if err != nil {
			return nil, badRequest("input image: %v", err)
		}
		xs := make([][]float32, n)
		for i, f := range files {
			// A decoded image can take hundreds of MB: a core's worth
			// of them at once, which is as fast as decoding goes.
			s.decoding.Acquire(1)
			img, err := imageprep.Decode(f)
			if err == nil {
				xs[i] = s.m.Prepare(img)
			}
			s.decoding.Release(1)
			if err != nil {
				return nil, badRequest("input image: element %d: %v", i, err)
			}
		}
		return xs, nil
	}
	return nil, badRequest("unknown input %q: this model takes %s", in.Name, s.inputsText())
}

// numbers reads a JSON array of want numbers, flat or nested (row major).
func numbers(raw json.RawMessage, want int) ([]float32, error) {
	if len(raw) == 0 {
		return nil, errors.New("no data")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	out := make([]float32, 0, want)
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("data: %v", err)
		}
		switch v := tok.(type) {
		case json.Delim: // brackets of nested arrays
			if v == '{' {
				return nil, errors.New("data holds an object, want numbers")
			}
		case json.Number:
			if len(out) == want {
				return nil, fmt.Errorf("data holds more than the shape's %d values", want)
			}
			f, err := strconv.ParseFloat(string(v), 32)
			if err != nil {
				return nil, fmt.Errorf("data: %v is not a 32-bit float", v)
			}
			out = append(out, float32(f))
		default:
			return nil, fmt.Errorf("data holds %v, want numbers", v)
		}
	}
	if len(out) != want {
		return nil, fmt.Errorf("data holds %d values, the shape %d", len(out), want)
	}
	return out, nil
}

// byteElements reads n BYTES elements: base64 strings in JSON, or binary
// data of a little-endian uint32 length before each.
func byteElements(raw json.RawMessage, data []byte, n int) ([][]byte, error) {
	var out [][]byte
	if data != nil {
		for len(data) > 0 {
			if len(data) < 4 {
				return nil, errors.New("binary data ends inside an element's length")
			}
			l := binary.LittleEndian.Uint32(data)
			if uint64(l) > uint64(len(data)-4) {
				return nil, fmt.Errorf("element %d claims %d bytes, %d follow", len(out), l, len(data)-4)
			}
			out, data = append(out, data[4:4+l]), data[4+l:]
		}
	} else {
		var strs []string
		if err := json.Unmarshal(raw, &strs); err != nil {
			return nil, fmt.Errorf("data is not an array of base64 strings (%v)", err)
		}
		for i, s := range strs {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, fmt.Errorf("element %d is not base64 (%v)", i, err)
			}
			out = append(out, b)
		}
	}
	if len(out) != n {
		return nil, fmt.Errorf("%d elements for shape [%d]", len(out), n)
	}
	return out, nil
}

// outputs words the results as the request asked.
func (s *Server) outputs(req *inferRequest, jobs []*job, classes []string, k int, binaryOut map[string]bool) (*response, error) {
	n, c := int64(len(jobs)), int64(len(classes))
	var outs []*responseOutput
	for _, name := range outputNames {
		bin, ok := binaryOut[name]
		if !ok {
			continue
		}
		o := &responseOutput{Name: name, Datatype: "FP32", Shape: []int64{n, int64(k)}}
		var floats []float32
		var strs []string
		for _, j := range jobs {
			switch name {
			case "probabilities":
				for _, p := range j.res.Probabilities {
					floats = append(floats, float32(p))
				}
			case "labels":
				for _, p := range j.res.Top(k) {
					strs = append(strs, p.Class)
				}
			case "scores":
				for _, p := range j.res.Top(k) {
					floats = append(floats, float32(p.Probability))
				}
			}
		}
		if name == "probabilities" {
			o.Shape = []int64{n, c}
		}
		if name == "labels" {
			o.Datatype = "BYTES"
			if bin {
				for _, s := range strs {
					o.binary = binary.LittleEndian.AppendUint32(o.binary, uint32(len(s)))
					o.binary = append(o.binary, s...)
				}
			} else {
				o.Data = strs
			}
		} else if bin {
			for _, f := range floats {
				o.binary = binary.LittleEndian.AppendUint32(o.binary, math.Float32bits(f))
			}
		} else {
			o.Data = floats
		}
		if bin {
			o.Parameters = map[string]any{"binary_data_size": len(o.binary)}
		}
		outs = append(outs, o)
	}
	head, err := json.Marshal(map[string]any{"model_name": s.o.Name, "model_version": "1", "id": req.ID, "outputs": outs})
	if err != nil {
		return nil, err
	}
	rs := &response{header: head}
	for _, o := range outs {
		rs.binary = append(rs.binary, o.binary...)
	}
	return rs, nil
}
