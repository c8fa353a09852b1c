package stages

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"
)

// Config is everything a run can be told, by preset, config file or flag.
// Each stage reads its own section and writes only the fields it reads into
// its cache key.
type Config struct {
	Seed uint64     `json:"seed"`
	Data DataConfig `json:"data"`
}

// DataConfig is the fetch stage's section.
type DataConfig struct {
	// Dataset is cifar10, cifar100 or synthetic.
	Dataset string `json:"dataset"`
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

// Datasets are the valid values of data.dataset.
var Datasets = []string{"cifar10", "cifar100", "synthetic"}

// presets are the named starting configurations. Model and schedule
// settings join them as the train stage lands.
var presets = map[string]Config{
	// The paper's CIFAR-10 recipe.
	"condensenet86": {Data: DataConfig{Dataset: "cifar10", SyntheticTrain: 10000, SyntheticTest: 2000}},
	// Minutes on a laptop CPU, on real CIFAR-10.
	"quick": {Data: DataConfig{Dataset: "cifar10", SyntheticTrain: 10000, SyntheticTest: 2000}},
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
	c, ok := presets[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown preset %q: want one of %s", name, strings.Join(Presets(), ", "))
	}
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
		}
		return fmt.Errorf("config %s: %v", name, err)
	}
	if d.More() {
		return fmt.Errorf("config %s: more than one JSON object", name)
	}
	return nil
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

// Check reports every invalid field, naming the field, its value and what
// would be valid.
func (c *Config) Check() error {
	var errs []error
	bad := func(field string, val any, want string) {
		errs = append(errs, fmt.Errorf("%s = %v: %s", field, val, want))
	}
	d := &c.Data
	if !slices.Contains(Datasets, d.Dataset) {
		bad("data.dataset", fmt.Sprintf("%q", d.Dataset), "want one of "+strings.Join(Datasets, ", "))
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
