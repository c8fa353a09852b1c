package stages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/condensenet/condensenet/model"
)

// Config is everything a run can be told, by preset, config file or flag.
// Each stage reads its own section and writes only the fields it reads into
// its cache key.
type Config struct {
	Seed     uint64         `json:"seed"`
	Data     DataConfig     `json:"data"`
	Model    model.Config   `json:"model"`
	Train    TrainConfig    `json:"train"`
	Condense CondenseConfig `json:"condense"`
	Verify   VerifyConfig   `json:"verify"`
	Export   ExportConfig   `json:"export"`
	// Preset names the preset the configuration started from (recorded in
	// the exported model); it is not read from config files.
	Preset string `json:"-"`
}

// TrainConfig is the train stage's section (the model's is Config.Model).
type TrainConfig struct {
	Epochs      int     `json:"epochs"`
	Batch       int     `json:"batch"`
	LR          float64 `json:"lr"` // peak of the cosine schedule
	Momentum    float64 `json:"momentum"`
	WeightDecay float64 `json:"weight_decay"`
	// ImagesPerEpoch limits an epoch to the first images of its shuffled
	// order (0: the whole training split).
	ImagesPerEpoch int `json:"images_per_epoch,omitempty"`
	// EvalEvery evaluates on the test split every this many epochs, and
	// always after the last (0: only after the last).
	EvalEvery int `json:"eval_every"`
	// Device is auto, cpu or cuda[:N]. Its kind (cpu or cuda, auto
	// resolved) is in the cache key and Workers is not (see Train.WriteKey).
	Device  string `json:"device"`
	Workers int    `json:"workers,omitempty"` // goroutines per kernel (0: every core)
	// CheckpointMinutes is how often training saves a checkpoint besides
	// each epoch's end (0: at epoch ends only). It changes no result, so it
	// is not part of the stage's key.
	CheckpointMinutes float64 `json:"checkpoint_minutes"`
}

// paperTraining is the paper's CIFAR recipe: 300 epochs of batch 64, SGD
// with Nesterov momentum 0.9, weight decay 1e-4, cosine learning rate from 0.1.
func paperTraining() TrainConfig {
	return TrainConfig{Epochs: 300, Batch: 64, LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4, EvalEvery: 1, Device: "auto", CheckpointMinutes: 10}
}

func paperPreset(depth int) Config {
	return Config{Data: defaultData(), Model: model.CondenseNet(depth), Train: paperTraining(), Verify: defaultVerify(), Export: defaultExport()}
}

func defaultExport() ExportConfig { return ExportConfig{Opset: 13} }

// defaultVerify allows the condensed network half a point of top-1.
func defaultVerify() VerifyConfig { return VerifyConfig{Tolerance: 0.5, Batch: 64} }

func defaultData() DataConfig {
	return DataConfig{Dataset: "cifar10", SyntheticTrain: 10000, SyntheticTest: 2000}
}

// DataConfig is the fetch stage's section.
type DataConfig struct {
	// Dataset is cifar10, cifar100, synthetic, or folder:PATH for an
	// image-folder dataset (PATH/train/<class>/*.png and PATH/val/...).
	Dataset string `json:"dataset"`
	// ImageSize is the side an image folder's images are resized to (0:
	// the network's input, 32 × 32).
	ImageSize int `json:"image_size,omitempty"`
	// Mean and Std normalise an image folder's images (per channel, on
	// [0, 1]) instead of the statistics of its training split.
	Mean []float32 `json:"mean,omitempty"`
	Std  []float32 `json:"std,omitempty"`
	// Strict refuses an image folder with images that cannot be read,
	// instead of leaving them out.
	Strict bool `json:"strict,omitempty"`
	// URL overrides the official download: http(s)://, file:// or a path.
	URL string `json:"url,omitempty"`
	// SHA256 and MD5 check the archive; one is required with URL.
	SHA256 string `json:"sha256,omitempty"`
	MD5    string `json:"md5,omitempty"`
	// CacheDir holds downloads shared by all workdirs ("" means the user
	// cache folder). It does not affect results, so it is not in the key.
	CacheDir string `json:"cache_dir,omitempty"`
	// SyntheticTrain and SyntheticTest are the synthetic dataset's sizes.
	SyntheticTrain int `json:"synthetic_train"`
	SyntheticTest  int `json:"synthetic_test"`
}

// Datasets are the valid values of data.dataset, besides folder:PATH.
var Datasets = []string{"cifar10", "cifar100", "synthetic"}

// FolderPath returns the PATH of a data.dataset of folder:PATH.
func FolderPath(dataset string) (string, bool) {
	p, ok := strings.CutPrefix(dataset, "folder:")
	return p, ok
}

// presets are the named starting configurations: the paper's networks
// with its recipe, and quick.
var presets = map[string]Config{
	"condensenet50":  paperPreset(50),
	"condensenet74":  paperPreset(74),
	"condensenet86":  paperPreset(86),
	"condensenet98":  paperPreset(98),
	"condensenet110": paperPreset(110),
	"condensenet122": paperPreset(122),
	// A few minutes on two cores with real CIFAR-10 (the README gives
	// today's time and accuracy): CondenseNet-20 (3-3-3), 5 short epochs of
	// 10,000 images, condensing in the first half as the paper does.
	"quick": {Data: defaultData(), Model: model.CondenseNet(20), Train: TrainConfig{
		Epochs: 5, Batch: 64, LR: 0.1, Momentum: 0.9, WeightDecay: 1e-4, ImagesPerEpoch: 10000, EvalEvery: 0, Device: "auto", CheckpointMinutes: 10},
		// Halving the classifier of so small and briefly trained a network
		// costs more than the paper's half point: 3.2 points measured.
		Verify: VerifyConfig{Tolerance: 5, Batch: 64}, Export: defaultExport()},
}

// imagenetPreset is the paper's ImageNet network with G = C = groups and
// the official recipe (condensenet.md): 120 epochs of batch 256, cosine
// learning rate from 0.1, ImageNet's normalisation, on an image folder
// that --dataset names.
func imagenetPreset(groups int) Config {
	train := paperTraining()
	train.Epochs, train.Batch = 120, 256
	return Config{Data: DataConfig{Mean: []float32{0.485, 0.456, 0.406}, Std: []float32{0.229, 0.224, 0.225}},
		Model: model.ImageNetCondenseNet(groups), Train: train, Verify: defaultVerify(), Export: defaultExport()}
}

func init() {
	presets["condensenet-imagenet"] = imagenetPreset(4)
	presets["condensenet-imagenet-g8"] = imagenetPreset(8)
}

// DefaultPreset is used when none is named.
const DefaultPreset = "condensenet86"

// Presets returns the preset names, sorted.
func Presets() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Preset returns the named preset.
func Preset(name string) (Config, error) {
	if _, ok := presets["condensenet"+name]; ok { // --preset 86, as the depths are listed
		name = "condensenet" + name
	}
	c, ok := presets[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown preset %q: want one of %s", name, strings.Join(Presets(), ", "))
	}
	c.Preset = name
	// A config file decodes into these slices in place: hand out copies.
	c.Model.Stages, c.Model.Growth = slices.Clone(c.Model.Stages), slices.Clone(c.Model.Growth)
	return c, nil
}

// ReadConfig applies the JSON in r on top of c. Fields it does not name keep
// their values; unknown fields are an error, so a typo is never ignored.
func (c *Config) ReadConfig(r io.Reader, name string) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("config %s: %w", name, err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(c); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line := bytes.Count(b[:se.Offset], []byte("\n")) + 1
			return fmt.Errorf("config %s: line %d: %v", name, line, err)
		case errors.As(err, &te):
			return fmt.Errorf("config %s: field %s: got a JSON %s, want %s", name, te.Field, te.Value, te.Type)
		case errors.Is(err, io.EOF):
			return fmt.Errorf("config %s is empty: want a JSON object, such as {\"train\": {\"epochs\": 10}}", name)
		}
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			msg := fmt.Sprintf("config %s: unknown field %s", name, field)
			if near := nearestField(strings.Trim(field, `"`)); near != "" {
				msg += fmt.Sprintf(": did you mean %s?", near)
			}
			return errors.New(msg)
		}
		return fmt.Errorf("config %s: %v", name, err)
	}
	if d.More() {
		return fmt.Errorf("config %s: more than one JSON object", name)
	}
	if key := duplicateKey(b); key != "" {
		return fmt.Errorf("config %s: %s is given twice: keep one (JSON would silently take the last)", name, key)
	}
	return nil
}

// duplicateKey returns the first key that an object in the JSON b names
// twice, as a dotted path ("train.epochs"), or "" if none does.
func duplicateKey(b []byte) string {
	type level struct {
		path   string
		seen   map[string]bool // nil in an array
		wanted bool            // the next token of an object is a key
	}
	var stack []*level
	d := json.NewDecoder(bytes.NewReader(b))
	key := ""
	for {
		t, err := d.Token()
		if err != nil {
			return ""
		}
		var top *level
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if k, ok := t.(string); ok && top != nil && top.seen != nil && top.wanted { // a key
			if top.seen[k] {
				return strings.TrimPrefix(top.path+"."+k, ".")
			}
			top.seen[k], top.wanted, key = true, false, k
			continue
		}
		if top != nil && top.seen != nil {
			top.wanted = true // this value, or the one that begins here, ends the member
		}
		switch t {
		case json.Delim('{'), json.Delim('['):
			path := ""
			switch {
			case top != nil && top.seen != nil:
				path = top.path + "." + key
			case top != nil:
				path = top.path + "[]"
			}
			l := &level{path: path}
			if t == json.Delim('{') {
				l.seen, l.wanted = map[string]bool{}, true
			}
			stack = append(stack, l)
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
		}
	}
}

// ReadConfigFile applies the JSON file at path on top of c.
func (c *Config) ReadConfigFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	return c.ReadConfig(f, path)
}

// ErrConfig marks an error in the configuration found only when a stage
// runs (a batch larger than the dataset, say): the CLI exits with its
// usage status for it, as for errors Check finds.
var ErrConfig = errors.New("invalid configuration")

// Check reports every invalid field, naming the field, its value and what
// would be valid.
func (c *Config) Check() error {
	var errs []error
	bad := func(field string, val any, want string) {
		errs = append(errs, fmt.Errorf("%s = %v: %s", field, val, want))
	}
	d := &c.Data
	folder, isFolder := FolderPath(d.Dataset)
	switch {
	case isFolder && folder == "":
		bad("data.dataset", fmt.Sprintf("%q", d.Dataset), "want folder:PATH, the folder holding train/ and val/")
	case d.Dataset == "": // the ImageNet presets: Fetch asks for a folder (info needs none)
	case !isFolder && !slices.Contains(Datasets, d.Dataset):
		bad("data.dataset", fmt.Sprintf("%q", d.Dataset), "want one of "+strings.Join(Datasets, ", ")+", or folder:PATH")
	}
	if in := c.Model.Input(); d.ImageSize != 0 && d.ImageSize != in {
		bad("data.image_size", d.ImageSize, fmt.Sprintf("want 0 or %d, the network's input (model.input_size)", in))
	}
	if in := c.Model.Input(); !isFolder && in != 32 && d.Dataset != "" {
		bad("model.input_size", in, fmt.Sprintf("the %s dataset's images are 32×32: want 32, or an image folder (folder:PATH)", d.Dataset))
	}
	if st := c.Model.Stride(); !isFolder && st > 1 && d.Dataset != "" {
		bad("model.stem_stride", st, fmt.Sprintf("a strided stem is the ImageNet form, which evaluates the centre crop of larger pictures; the %s dataset's 32×32 images have none to crop: want 1, or an image folder (folder:PATH)", d.Dataset))
	}
	if !isFolder && d.Dataset != "" && (d.ImageSize != 0 || d.Mean != nil || d.Std != nil || d.Strict) {
		bad("data.dataset", fmt.Sprintf("%q", d.Dataset), "data.image_size, mean, std and strict are for image folders (folder:PATH)")
	}
	if d.Mean != nil || d.Std != nil {
		ok := len(d.Mean) == 3 && len(d.Std) == 3
		for _, v := range d.Std {
			ok = ok && v > 0
		}
		if !ok {
			bad("data.mean/data.std", fmt.Sprintf("%v/%v", d.Mean, d.Std), "want three numbers each (R, G, B), the standard deviations above 0")
		}
	}
	if isFolder && (d.URL != "" || d.SHA256 != "" || d.MD5 != "") {
		bad("data.url", fmt.Sprintf("%q", d.URL), "an image folder is read in place, not downloaded: leave url and checksums empty")
	}
	if d.Dataset == "synthetic" {
		if d.SyntheticTrain < 10 || d.SyntheticTrain > 1_000_000 {
			bad("data.synthetic_train", d.SyntheticTrain, "want 10..1000000")
		}
		if d.SyntheticTest < 10 || d.SyntheticTest > 1_000_000 {
			bad("data.synthetic_test", d.SyntheticTest, "want 10..1000000")
		}
		if d.URL != "" || d.SHA256 != "" || d.MD5 != "" {
			bad("data.url", fmt.Sprintf("%q", d.URL), "the synthetic dataset is generated, not downloaded: leave url and checksums empty")
		}
	}
	if err := c.Model.Check(); err != nil {
		errs = append(errs, fmt.Errorf("model: %w", err))
	}
	t := &c.Train
	for _, f := range []struct {
		name      string
		v, lo, hi int
	}{{"train.epochs", t.Epochs, 1, 100000}, {"train.batch", t.Batch, 2, 4096}, {"train.eval_every", t.EvalEvery, 0, 100000},
		{"train.images_per_epoch", t.ImagesPerEpoch, 0, 100000000}, {"train.workers", t.Workers, 0, 1024}} {
		if f.v < f.lo || f.v > f.hi {
			bad(f.name, f.v, fmt.Sprintf("want %d..%d", f.lo, f.hi))
		}
	}
	if d.Dataset == "synthetic" && t.Batch > d.SyntheticTrain {
		bad("train.batch", t.Batch, fmt.Sprintf("want at most data.synthetic_train (%d): a batch larger than the training set trains nothing", d.SyntheticTrain))
	}
	if t.ImagesPerEpoch != 0 && t.ImagesPerEpoch < t.Batch {
		bad("train.images_per_epoch", t.ImagesPerEpoch, fmt.Sprintf("want 0 (all) or at least train.batch (%d)", t.Batch))
	}
	if !(t.CheckpointMinutes >= 0 && t.CheckpointMinutes <= 1e6) {
		bad("train.checkpoint_minutes", t.CheckpointMinutes, "want 0 (at epoch ends only) or more minutes")
	}
	if !(t.LR > 0 && t.LR < 10) {
		bad("train.lr", t.LR, "want 0 < lr < 10")
	}
	if !(t.Momentum >= 0 && t.Momentum < 1) {
		bad("train.momentum", t.Momentum, "want 0 ≤ momentum < 1")
	}
	if !(t.WeightDecay >= 0 && t.WeightDecay < 1) {
		bad("train.weight_decay", t.WeightDecay, "want 0 ≤ weight_decay < 1")
	}
	if v := c.Verify; !(v.Tolerance >= 0 && v.Tolerance <= 100) {
		bad("verify.tolerance", v.Tolerance, "want 0..100 points of top-1 accuracy")
	}
	if o := c.Export.Opset; o < 13 || o > 17 {
		bad("export.opset", o, "want 13..17")
	}
	if v := c.Verify; v.Batch < 1 || v.Batch > 4096 {
		bad("verify.batch", v.Batch, "want 1..4096")
	}
	if _, err := parseDevice(t.Device); err != nil {
		bad("train.device", fmt.Sprintf("%q", t.Device), err.Error())
	}
	if err := checkHex("data.sha256", d.SHA256, 64); err != nil {
		errs = append(errs, err)
	}
	if err := checkHex("data.md5", d.MD5, 32); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func checkHex(field, v string, n int) error {
	if v != "" && (len(v) != n || strings.Trim(strings.ToLower(v), "0123456789abcdef") != "") {
		return fmt.Errorf("%s = %q: want %d hex digits", field, v, n)
	}
	return nil
}

// nearestField returns the configuration field, as section.field, whose
// name is within two edits of name, or "".
func nearestField(name string) string {
	best, bestD := "", 3
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if tag == "" || tag == "-" {
				continue
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, prefix+tag+".")
				continue
			}
			if d := editDistance(name, tag); d < bestD {
				best, bestD = prefix+tag, d
			}
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}
