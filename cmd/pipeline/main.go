// Command pipeline trains CondenseNet on CIFAR, condenses it into a network
// of standard group convolutions, verifies it and exports it as ONNX.
//
// Run "pipeline help" for the commands; EXIT STATUS in that help lists the
// exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/condensenet/condensenet/cifar"
	"github.com/condensenet/condensenet/engine"
	"github.com/condensenet/condensenet/pipeline"
	"github.com/condensenet/condensenet/stages"
)

// Exit codes; documented in the root command's help.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitVerify      = 3
	exitNoDevice    = 4
	exitInterrupted = 130
	exitTerminated  = 143
)

const exitHelp = `EXIT STATUS
  0    success
  1    error
  2    usage error (bad flag, argument or configuration)
  3    the pipeline finished but verify failed
  4    CUDA requested but unavailable
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM). Run again to continue.
`

func main() {
	ctx, stop, signalled := interruptible()
	defer stop()
	g := newGlobals(os.Stdout, os.Stderr)
	err := newRootCommand(g).ExecuteContext(ctx)
	os.Exit(exitCode(g, err, signalled()))
}

// interruptible returns a context cancelled by the first SIGINT or SIGTERM;
// a second one exits at once. signalled reports which signal came, if any.
func interruptible() (ctx context.Context, stop func(), signalled func() os.Signal) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	got := make(chan os.Signal, 1)
	go func() {
		s := <-ch
		got <- s
		cancel()
		fmt.Fprintln(os.Stderr, "\nstopping cleanly (press Ctrl-C again to quit at once)...")
		<-ch
		os.Exit(exitInterrupted)
	}()
	return ctx, func() { signal.Stop(ch); cancel() }, func() os.Signal {
		select {
		case s := <-got:
			return s
		default:
			return nil
		}
	}
}

// exitCode reports err to the user, with a hint where one helps, and maps it
// to the process's exit status. It is the only place that does either.
func exitCode(g *Globals, err error, sig os.Signal) int {
	if err == nil {
		return exitOK
	}
	code, hint := exitError, ""
	switch {
	case sig != nil || errors.Is(err, context.Canceled):
		code = exitInterrupted
		if sig == syscall.SIGTERM {
			code = exitTerminated
		}
		hint = "finished stages are kept; run the same command again to continue"
	case errors.Is(err, errUsage), errors.Is(err, stages.ErrConfig), strings.HasPrefix(err.Error(), "unknown command "): // cobra's own
		code = exitUsage
	case errors.Is(err, pipeline.ErrVerifyFailed):
		code = exitVerify
	case errors.Is(err, engine.ErrNoDevice):
		code = exitNoDevice
	case errors.Is(err, cifar.ErrUnreachable):
		hint = "to run without network, use a local copy: --data-url PATH with --data-sha256 HEX or --data-md5 HEX, or --dataset synthetic"
	case errors.Is(err, cifar.ErrChecksum):
		hint = "the data is not the file expected: check --data-url and the checksum flags"
	}
	g.reportError(err, hint, code)
	return code
}
