package artifacts

import (
	"encoding/json"
	"fmt"
)

// KindReport is the kind of a Report artifact.
const (
	KindReport   = "report"
	reportSchema = 1
)

// A NetResult is one network's measurements on the test split.
type NetResult struct {
	Top1Error    float64   `json:"top1_error"` // fractions, not percent
	Top5Error    float64   `json:"top5_error"`
	FLOPs        int64     `json:"flops"`
	Params       int64     `json:"params"`
	ImagesPerSec float64   `json:"images_per_sec"` // inference at the report's batch size
	PerClass     []float64 `json:"per_class_accuracy"`
}

// A Report compares the trained (masked) and condensed networks.
type Report struct {
	Dataset   string    `json:"dataset"`
	Classes   []string  `json:"classes"`
	Images    int       `json:"images"`
	Batch     int       `json:"batch"`
	Trained   NetResult `json:"trained"`
	Condensed NetResult `json:"condensed"`
	// Int8 is the condensed network's int8 form, when it was measured.
	Int8 *NetResult `json:"int8,omitempty"`
	// Difference is the condensed top-1 error minus the trained one.
	Difference float64 `json:"top1_error_difference"`
	Tolerance  float64 `json:"tolerance"`
	// Passed says whether Difference is within Tolerance (in points). A
	// failed verification is kept as a report too, so that it is seen.
	Passed bool `json:"passed"`
	// Confusion counts the condensed network's predictions: row = true
	// class, column = predicted.
	Confusion [][]int `json:"confusion"`

	Markdown     []byte `json:"-"` // report.md
	ConfusionPNG []byte `json:"-"` // confusion.png
}

// HasTop5 reports whether top-5 accuracy says anything: with five classes
// or fewer every image is in its top 5.
func (r *Report) HasTop5() bool { return len(r.Classes) > 5 }

func (r *Report) Info() Info { return Info{Kind: KindReport, Schema: reportSchema} }

func (r *Report) Summary() string {
	verdict := ""
	if !r.Passed {
		verdict = fmt.Sprintf("FAILED (tolerance %.2f points): ", r.Tolerance)
	}
	return fmt.Sprintf("%stop-1 error %.2f%% trained, %.2f%% condensed (%+.2f points); condensed %.1fx the trained network's speed",
		verdict, 100*r.Trained.Top1Error, 100*r.Condensed.Top1Error, 100*r.Difference, r.Condensed.ImagesPerSec/r.Trained.ImagesPerSec)
}

func (r *Report) Write(w *Writer) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	// The report measures speed too: report.json and report.md are
	// volatile, so that a re-run that only timed differently does not
	// invalidate what follows. The measurement without the speeds is
	// accuracy.json, which gives the artifact its ID.
	acc := *r
	acc.Trained.ImagesPerSec, acc.Condensed.ImagesPerSec = 0, 0
	if r.Int8 != nil {
		i8 := *r.Int8
		i8.ImagesPerSec, acc.Int8 = 0, &i8
	}
	a, err := json.MarshalIndent(&acc, "", "  ")
	if err != nil {
		return err
	}
	if err := w.WriteFile("accuracy.json", append(a, '\n')); err != nil {
		return err
	}
	if err := w.WriteVolatile("report.json", append(b, '\n')); err != nil {
		return err
	}
	if err := w.WriteVolatile("report.md", r.Markdown); err != nil {
		return err
	}
	return w.WriteVolatile("confusion.png", r.ConfusionPNG)
}

// LoadReport reads a Report artifact.
func LoadReport(a *Artifact) (*Report, error) {
	if err := a.expect(KindReport, reportSchema); err != nil {
		return nil, err
	}
	b, err := a.ReadFile("report.json")
	if err != nil {
		return nil, err
	}
	r := &Report{}
	if err := json.Unmarshal(b, r); err != nil {
		return nil, &CorruptError{Dir: a.Dir, File: "report.json", Reason: err.Error()}
	}
	if r.Markdown, err = a.ReadFile("report.md"); err != nil {
		return nil, err
	}
	if r.ConfusionPNG, err = a.ReadFile("confusion.png"); err != nil {
		return nil, err
	}
	return r, nil
}
