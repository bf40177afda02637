package opentsdb

import (
	"errors"
	"strings"
	"testing"

	"github.com/mqttpersist/mqttpersist/persist"
)

// TestAnswerError reads /api/put's answers as OpenTSDB 2.x documents them
// (http://opentsdb.net/docs/build/html/api_http/put.html): no content, a
// summary, details with the refused points, an error object. No server
// here sends summaries (InfluxDB's input and VictoriaMetrics answer 204),
// so the reading is checked against the documented bodies.
func TestAnswerError(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
		kind   error // nil: no error
		retry  bool
		want   string
	}{
		{"no content", 204, "", nil, false, ""},
		{"summary", 200, `{"failed": 0, "success": 20}`, nil, false, ""},
		{"summary with failures", 200, `{"failed": 1, "success": 19}`, persist.ErrInvalid, false, "1 of 20 points failed"},
		{"details", 400, `{"errors": [{"datapoint": {"metric": "sys.cpu.nice", "timestamp": 1365465600, "value": "NaN", "tags": {"host": "web01"}},
			"error": "Unable to parse value to a number"}], "failed": 1, "success": 0}`, persist.ErrInvalid, false,
			`1 of 1 points failed; {"metric": "sys.cpu.nice", "timestamp": 1365465600, "value": "NaN", "tags": {"host": "web01"}}: Unable to parse value to a number`},
		{"error object", 400, `{"error": {"code": 400, "message": "One or more data points had errors", "details": "Please see the TSD logs or append \"details\" to the put request"}}`,
			persist.ErrInvalid, false, "One or more data points had errors (Please see the TSD logs"},
		{"text", 400, "json array decode error\n", persist.ErrInvalid, false, "HTTP 400: json array decode error"},
		{"sync timeout", 500, `{"error": {"code": 500, "message": "Timed out"}}`, persist.ErrUnavailable, true, "Timed out"},
		{"unavailable", 503, "", persist.ErrUnavailable, true, "HTTP 503"},
		{"forbidden", 403, "", nil, false, "HTTP 403"},
	} {
		err := answerError(c.status, []byte(c.body))
		switch {
		case c.kind == nil && c.want == "":
			if err != nil {
				t.Errorf("%s: %v, want nil", c.name, err)
			}
		case err == nil:
			t.Errorf("%s: nil, want an error", c.name)
		case c.kind != nil && !errors.Is(err, c.kind), persist.IsRetryable(err) != c.retry, !strings.Contains(err.Error(), c.want):
			t.Errorf("%s: %v (retryable %v), want %v (retryable %v) saying %q", c.name, err, persist.IsRetryable(err), c.kind, c.retry, c.want)
		}
	}
}
