package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/condensenet/condensenet/internal/atomicfile"
	"github.com/condensenet/condensenet/stages"
)

// settingsFile is where a workdir remembers the settings its last run used
// (preset, config file and flags, resolved into one configuration), so a
// later command in it needs none of them again.
const settingsFile = "settings.json"

type savedSettings struct {
	Preset string          `json:"preset"`
	Config json.RawMessage `json:"config"`
}

// loadSettings returns the configuration the workdir was last run with;
// ok is false when it has none.
func loadSettings(workdir string) (cfg stages.Config, ok bool, err error) {
	path := filepath.Join(workdir, settingsFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, false, nil
	}
	if err == nil {
		cfg, err = parseSettings(b, path)
	}
	if err != nil {
		return cfg, false, fmt.Errorf("%s: %w (the settings of the workdir's last run; delete the file or give --preset to start from a preset)", path, err)
	}
	return cfg, true, nil
}

// parseSettings reads settings as settingsJSON writes them; path names
// where they came from.
func parseSettings(b []byte, path string) (stages.Config, error) {
	var s savedSettings
	err := json.Unmarshal(b, &s)
	if err == nil {
		_, err = stages.Preset(s.Preset)
	}
	if err != nil {
		return stages.Config{}, err
	}
	// Into a zero configuration: the file holds every field but those
	// left out for being empty, which must stay empty.
	cfg := stages.Config{Preset: s.Preset}
	err = cfg.ReadConfig(bytes.NewReader(s.Config), path)
	return cfg, err
}

// saveSettings records cfg as the workdir's settings, atomically. Settings
// the workdir holds already are not written again (the workdir may be
// read-only).
func saveSettings(workdir string, cfg stages.Config) error {
	path := filepath.Join(workdir, settingsFile)
	b, err := settingsJSON(cfg)
	if old, rerr := os.ReadFile(path); rerr == nil && bytes.Equal(old, b) {
		return nil
	}
	if err == nil {
		err = atomicfile.WriteFile(path, b)
	}
	if err != nil {
		return fmt.Errorf("remembering the settings in %s: %w", workdir, err)
	}
	return nil
}

// settingsJSON is cfg as the settings file holds it.
func settingsJSON(cfg stages.Config) ([]byte, error) {
	c, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(savedSettings{Preset: cfg.Preset, Config: c}, "", "  ")
	return append(b, '\n'), err
}

// describe says in a few words what a configuration trains on what.
func describe(cfg stages.Config) string {
	data := cfg.Data.Dataset
	if cfg.Data.URL != "" {
		data += " from " + cfg.Data.URL
	}
	epochs := "epochs"
	if cfg.Train.Epochs == 1 {
		epochs = "epoch"
	}
	return fmt.Sprintf("preset %s, %s, %d %s on device %s", cfg.Preset, data, cfg.Train.Epochs, epochs, cfg.Train.Device)
}
