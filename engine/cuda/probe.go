package cuda

import "fmt"

// A Probe says what this machine offers the CUDA backend without starting
// it: the driver and its devices, and where cuBLAS and NVRTC were found.
// Whatever is missing is a problem said in words.
type Probe struct {
	Driver   string   `json:"driver,omitempty"`  // libcuda's path
	Devices  []string `json:"devices,omitempty"` // cuda:N in order
	CUBLAS   string   `json:"cublas,omitempty"`
	NVRTC    string   `json:"nvrtc,omitempty"` // path and version
	Problems []string `json:"problems,omitempty"`
}

// Detect fills a Probe.
func Detect() Probe {
	var p Probe
	drv, count, err := startDriver()
	if drv != nil {
		p.Driver = drv.path
	}
	if err != nil {
		p.Problems = append(p.Problems, err.Error())
	}
	for i := range count {
		if _, _, info, err := drv.describe(i); err != nil {
			p.Problems = append(p.Problems, fmt.Sprintf("cuda:%d: %v", i, err))
		} else {
			p.Devices = append(p.Devices, info)
		}
	}
	if _, path, err := libCUBLAS.open(); err != nil {
		p.Problems = append(p.Problems, err.Error())
	} else {
		p.CUBLAS = path
	}
	if c, err := loadCompiler(); err != nil {
		p.Problems = append(p.Problems, err.Error())
	} else {
		p.NVRTC = fmt.Sprintf("%s (NVRTC %s)", c.path, c.Version())
	}
	return p
}

// Available returns nil when the backend can start: a driver with at least
// one device, cuBLAS and NVRTC. Otherwise it says what is missing; with
// NoDevice(err) the machine has no GPU at all. It compiles nothing and
// creates no context, so it is cheap enough to ask before every run.
func Available() error {
	if _, _, err := startDriver(); err != nil {
		return err
	}
	if _, _, err := libCUBLAS.open(); err != nil {
		return err
	}
	_, err := loadCompiler()
	return err
}
