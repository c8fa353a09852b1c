package stages

import (
	"strings"
	"testing"
)

func TestReadConfig(t *testing.T) {
	c, _ := Preset("quick")
	if err := c.ReadConfig(strings.NewReader(`{"seed": 5, "data": {"dataset": "synthetic"}}`), "x.json"); err != nil {
		t.Fatal(err)
	}
	if c.Seed != 5 || c.Data.Dataset != "synthetic" || c.Data.SyntheticTrain == 0 {
		t.Errorf("config = %+v: want the file's fields over the preset's, the rest kept", c)
	}
	for _, tc := range []struct{ json, want string }{
		{`{"data": {"datset": "cifar10"}}`, `unknown field "datset"`},
		{`{"seed": "five"}`, "field seed: got a JSON string, want uint64"},
		{`{"seed": 1,}`, "x.json: line 1"},
		{"{\n\"seed\": 1\n\"data\": {}}", "x.json: line 3"},
		{`{"seed": 1} {"seed": 2}`, "more than one JSON object"},
	} {
		c, _ := Preset("quick")
		err := c.ReadConfig(strings.NewReader(tc.json), "x.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ReadConfig(%s) = %v, want %q", tc.json, err, tc.want)
		}
	}
}

func TestConfigCheck(t *testing.T) {
	for _, tc := range []struct {
		edit func(c *Config)
		want []string
	}{
		{func(c *Config) { c.Data.Dataset = "mnist" }, []string{`data.dataset = "mnist": want one of cifar10, cifar100, synthetic`}},
		{func(c *Config) { c.Data.Dataset = "synthetic"; c.Data.SyntheticTrain = 3 }, []string{"data.synthetic_train = 3: want 10..1000000"}},
		{func(c *Config) { c.Data.SHA256 = "abc"; c.Data.MD5 = "zz" }, []string{`data.sha256 = "abc": want 64 hex digits`, `data.md5 = "zz": want 32 hex digits`}},
	} {
		c, _ := Preset("quick")
		tc.edit(&c)
		err := c.Check()
		for _, w := range tc.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("Check() = %v, want %q", err, w)
			}
		}
	}
	for _, name := range Presets() {
		c, _ := Preset(name)
		if err := c.Check(); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
	if _, err := Preset("huge"); err == nil || !strings.Contains(err.Error(), "quick") {
		t.Errorf("Preset(huge) = %v, want an error listing the presets", err)
	}
}

func TestPresetsAreCopies(t *testing.T) {
	c, _ := Preset("quick")
	if err := c.ReadConfig(strings.NewReader(`{"model": {"stages": [1, 1, 1]}}`), "x.json"); err != nil {
		t.Fatal(err)
	}
	if again, _ := Preset("quick"); again.Model.Stages[0] != 3 {
		t.Errorf("a config file changed the quick preset itself: stages %v", again.Model.Stages)
	}
}

// An empty config file and a misspelt field get messages that say what to
// write; a preset may be named by its depth alone.
func TestConfigMessages(t *testing.T) {
	c, _ := Preset("quick")
	if err := c.ReadConfig(strings.NewReader(""), "empty.json"); err == nil || !strings.Contains(err.Error(), "empty.json is empty: want a JSON object") {
		t.Errorf("empty config: %v", err)
	}
	for doc, want := range map[string]string{
		`{"train": {"epochs": 1, "batch": 8, "epochs": 2}}`:             "train.epochs is given twice",
		`{"seed": 1, "model": {"stages": [1, 1, 1]}, "seed": 2}`:        "seed is given twice",
		`{"train": {"epochs": 1}, "model": {"growth": [4, 4, 4]}}`:      "",
		`{"train": {"epochs": 1}, "verify": {"epochs": 1, "batch": 2}}`: "", // the same name in two sections
	} {
		var c Config
		err := c.ReadConfig(strings.NewReader(doc), "dup.json")
		if want == "" && err != nil && strings.Contains(err.Error(), "twice") || want != "" && (err == nil || !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", doc, err, want)
		}
	}
	if err := c.ReadConfig(strings.NewReader(`{"train": {"epoch": 3}}`), "typo.json"); err == nil ||
		!strings.Contains(err.Error(), `unknown field "epoch": did you mean train.epochs?`) {
		t.Errorf("misspelt field: %v", err)
	}
	if err := c.ReadConfig(strings.NewReader(`{"train": {"zzzzzz": 3}}`), "odd.json"); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("a field like none: %v", err)
	}
	if p, err := Preset("86"); err != nil || p.Preset != "condensenet86" {
		t.Errorf("Preset(86) = %q, %v", p.Preset, err)
	}
}
