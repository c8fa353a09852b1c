package serve

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"strconv"
	"testing"
)

// Nothing a client sends crashes the server: every body, with or without
// binary data, gets 200 or a 4xx with the protocol's error object.
func FuzzInfer(f *testing.F) {
	f.Add([]byte(`{"id":"42","inputs":[{"name":"input0","shape":[2,2],"datatype":"UINT32","data":[1,2,3,4]}],"outputs":[{"name":"output0"}]}`), -1)
	f.Add([]byte(`{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","data":[[1,2]]}]}`), -1)
	f.Add([]byte(`{"inputs":[{"name":"image","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":8}}]}`+"\x04\x00\x00\x00\x89PNG"), 97)
	f.Add([]byte(`{"inputs":[{"name":"input","shape":[1,3,32,32],"datatype":"FP32","parameters":{"binary_data_size":4}}],"parameters":{"top_k":3,"binary_data_output":true}}`+"\x00\x00\x80\x3f"), 140)
	m, err := openTiny()
	if err != nil {
		f.Fatal(err)
	}
	s := New(m, Options{MaxBody: 1 << 20})
	defer s.Close()
	f.Fuzz(func(t *testing.T, body []byte, head int) {
		req := httptest.NewRequest("POST", "/v2/models/condensenet/infer", bytes.NewReader(body))
		if head >= 0 {
			req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(head))
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if rec.Code == 200 {
			return
		}
		var e struct{ Error string }
		if rec.Code < 400 || rec.Code >= 500 && rec.Code != 503 || json.Unmarshal(rec.Body.Bytes(), &e) != nil || e.Error == "" {
			t.Errorf("status %d, body %q", rec.Code, rec.Body.Bytes())
		}
	})
}
