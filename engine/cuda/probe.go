package cuda

import (
	"fmt"
	"strings"
)

// A Probe says what this machine offers the CUDA backend without starting
// it: the driver and its devices, where cuBLAS and NVRTC were found, and
// what the kernels will be compiled to. Whatever is missing is a problem
// said in words.
type Probe struct {
	Driver   string   `json:"driver,omitempty"`  // libcuda's path
	Devices  []string `json:"devices,omitempty"` // cuda:N in order
	CUBLAS   string   `json:"cublas,omitempty"`
	NVRTC    string   `json:"nvrtc,omitempty"`         // path and version
	Skipped  []string `json:"nvrtc_skipped,omitempty"` // NVRTCs newer than the driver
	Kernels  []string `json:"kernels,omitempty"`       // per device: what is tried, in order
	Problems []string `json:"problems,omitempty"`
}

// Detect fills a Probe.
func Detect() Probe {
	var p Probe
	drv, count, err := startDriver()
	var driverVersion int32
	if drv != nil {
		p.Driver = drv.path
		driverVersion = drv.version()
	}
	if err != nil {
		p.Problems = append(p.Problems, err.Error())
	}
	var ccs []int
	for i := range count {
		if _, cc, info, err := drv.describe(i); err != nil {
			p.Problems = append(p.Problems, fmt.Sprintf("cuda:%d: %v", i, err))
		} else {
			p.Devices = append(p.Devices, info)
			ccs = append(ccs, cc)
		}
	}
	if _, path, err := libCUBLAS.open(nil); err != nil {
		p.Problems = append(p.Problems, err.Error())
	} else {
		p.CUBLAS = path
	}
	c, err := loadCompiler(driverVersion)
	if err != nil {
		p.Problems = append(p.Problems, err.Error())
		return p
	}
	p.NVRTC = fmt.Sprintf("%s (NVRTC %s)", c.path, c.Version())
	if driverVersion > 0 {
		p.NVRTC = fmt.Sprintf("%s (NVRTC %s, not newer than the driver's CUDA %s)", c.path, c.Version(), cudaVersion(driverVersion))
	}
	p.Skipped = c.Skipped
	for i, cc := range ccs {
		ts, err := c.targets(cc)
		if err != nil {
			p.Problems = append(p.Problems, fmt.Sprintf("cuda:%d: %v", i, err))
			continue
		}
		var names []string
		for _, t := range ts {
			names = append(names, t.String())
		}
		p.Kernels = append(p.Kernels, fmt.Sprintf("cuda:%d: %s", i, strings.Join(names, ", then ")))
	}
	return p
}

// Available returns nil when the backend can start: a driver with at least
// one device, cuBLAS and an NVRTC not newer than the driver. Otherwise it
// says what is missing; with NoDevice(err) the machine has no GPU at all.
// It compiles nothing and creates no context, so it is cheap enough to ask
// before every run.
func Available() error {
	drv, _, err := startDriver()
	if err != nil {
		return err
	}
	if _, _, err := libCUBLAS.open(nil); err != nil {
		return err
	}
	_, err = loadCompiler(drv.version())
	return err
}
