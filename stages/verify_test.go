package stages

import (
	"strings"
	"testing"

	"github.com/condensenet/condensenet/artifacts"
)

// Top-5 accuracy is shown only where it says something: with five classes
// or fewer every image is in its top 5.
func TestReportTop5OnlyPastFiveClasses(t *testing.T) {
	for _, tc := range []struct {
		classes int
		want    string
	}{{3, "| n/a (≤ 5 classes) |"}, {5, "| n/a (≤ 5 classes) |"}, {6, "| 12.50% |"}} {
		r := &artifacts.Report{Classes: make([]string, tc.classes), Passed: true}
		r.Condensed.Top5Error, r.Condensed.PerClass, r.Trained.PerClass = 0.125, make([]float64, tc.classes), make([]float64, tc.classes)
		if md := string(reportMarkdown(r)); !strings.Contains(md, tc.want) {
			t.Errorf("%d classes: the report has no %q:\n%s", tc.classes, tc.want, md)
		}
	}
}
