package stages

import (
	"context"
	"fmt"
	"io"

	"github.com/condensenet/condensenet/pipeline"
)

// pending is a stage that is planned but not built yet. It fails when run,
// so nothing ever pretends to have run it.
type pending struct {
	name   string
	inputs []string
	issue  int
}

func (p pending) Name() string       { return p.name }
func (p pending) Version() int       { return 0 }
func (p pending) Inputs() []string   { return p.inputs }
func (p pending) WriteKey(io.Writer) {}

func (p pending) Run(context.Context, *pipeline.Env) (pipeline.Output, error) {
	return nil, fmt.Errorf("%w (issue #%d)", ErrNotImplemented, p.issue)
}
