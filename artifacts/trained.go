package artifacts

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
)

// KindTrainedModel is the kind of a TrainedModel artifact.
const (
	KindTrainedModel = "trained-model"
	trainedSchema    = 1
)

// A Metric is one epoch of training, as written to metrics.jsonl.
type Metric struct {
	Epoch        int      `json:"epoch"` // 1-based
	Iteration    int      `json:"iteration"`
	Loss         float64  `json:"loss"` // mean training loss (cross-entropy + group lasso)
	TrainTop1    float64  `json:"train_top1"`
	TrainTop5    float64  `json:"train_top5"`
	TestTop1     *float64 `json:"test_top1,omitempty"` // absent when not evaluated
	TestTop5     *float64 `json:"test_top5,omitempty"`
	LR           float64  `json:"lr"`    // at the epoch's last step
	Stage        int      `json:"stage"` // condensation stage reached
	Seconds      float64  `json:"seconds"`
	ImagesPerSec float64  `json:"images_per_sec"`
	Device       string   `json:"device,omitempty"` // where the epoch ran: a run may move between devices
}

// A TrainedModel is a trained CondenseNet: its configuration, weights
// (masks and condensation state included), per-epoch metrics and a plot of
// them.
type TrainedModel struct {
	Config  []byte // config.json: model and training settings
	Weights []byte // model.safetensors, PyTorch-style names
	Metrics []Metric
	Plot    []byte // curves.png
}

const (
	trainedConfigFile  = "config.json"
	trainedWeightsFile = "model.safetensors"
	trainedMetricsFile = "metrics.jsonl"
	trainedPlotFile    = "curves.png"
)

func (m *TrainedModel) Info() Info { return Info{Kind: KindTrainedModel, Schema: trainedSchema} }

// Summary describes the training's outcome in one line.
func (m *TrainedModel) Summary() string {
	if len(m.Metrics) == 0 {
		return "trained 0 epochs"
	}
	last := m.Metrics[len(m.Metrics)-1]
	s := fmt.Sprintf("%d epochs, final loss %.4f, train top-1 %.2f%%", last.Epoch, last.Loss, 100*last.TrainTop1)
	if last.TestTop1 != nil {
		s += fmt.Sprintf(", test top-1 %.2f%% (top-5 %.2f%%)", 100**last.TestTop1, 100**last.TestTop5)
	}
	return s
}

func (m *TrainedModel) Write(w *Writer) error {
	var metrics bytes.Buffer
	enc := json.NewEncoder(&metrics)
	for _, e := range m.Metrics {
		if err := enc.Encode(e); err != nil {
			return err
		}
	}
	if err := w.WriteFile(trainedConfigFile, m.Config); err != nil {
		return err
	}
	if err := w.WriteFile(trainedWeightsFile, m.Weights); err != nil {
		return err
	}
	// Metrics carry timings, and the plot is drawn from them.
	if err := w.WriteVolatile(trainedMetricsFile, metrics.Bytes()); err != nil {
		return err
	}
	return w.WriteVolatile(trainedPlotFile, m.Plot)
}

// LoadTrainedModel reads a TrainedModel artifact.
func LoadTrainedModel(a *Artifact) (*TrainedModel, error) {
	if err := a.expect(KindTrainedModel, trainedSchema); err != nil {
		return nil, err
	}
	m := &TrainedModel{}
	var err error
	if m.Config, err = a.ReadFile(trainedConfigFile); err != nil {
		return nil, err
	}
	if m.Weights, err = a.ReadFile(trainedWeightsFile); err != nil {
		return nil, err
	}
	if m.Plot, err = a.ReadFile(trainedPlotFile); err != nil {
		return nil, err
	}
	b, err := a.ReadFile(trainedMetricsFile)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		var e Metric
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, &CorruptError{Dir: a.Dir, File: trainedMetricsFile, Reason: fmt.Sprintf("line %d: %v", line, err)}
		}
		m.Metrics = append(m.Metrics, e)
	}
	return m, nil
}
