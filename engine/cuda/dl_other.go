//go:build !(linux || darwin || freebsd)

package cuda

import (
	"errors"
	"runtime"
)

// The backend loads CUDA with dlopen; elsewhere (Windows) there is no GPU
// path yet and every library is missing.
var errNoDlopen = errors.New("loading CUDA libraries is not supported on " + runtime.GOOS)

func dlopen(string) (uintptr, error)         { return 0, errNoDlopen }
func dlsym(uintptr, string) (uintptr, error) { return 0, errNoDlopen }
