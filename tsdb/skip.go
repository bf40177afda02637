package tsdb

import (
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Reason says why a message was skipped for a template.
type Reason uint8

// The reasons a message is skipped for a template. Each is counted (see
// Stats) and reported to the writer's skip handler (see Reporter.OnSkip).
const (
	// NotJSON: the template takes a payload path and the payload is not
	// JSON.
	NotJSON Reason = iota + 1
	// Missing: a payload path finds no value (a missing key, a position
	// past the end of an array, a key looked up in a number, …).
	Missing
	// Lengths: the $0 paths of the template give different numbers of
	// values.
	Lengths
	// Empty: the message makes no point: $0 found an empty array, or none
	// of the point's fields has a value.
	Empty
	// Type: a value has a type its place cannot take, such as a string as
	// an OpenTSDB value or an object as a timestamp.
	Type
	// Unwritable: a value the protocol cannot carry, such as a newline in
	// an InfluxDB tag or a space in an OpenTSDB tag.
	Unwritable
	// TooLarge: a point larger than the protocol allows, such as an
	// InfluxDB line longer than a UDP datagram.
	TooLarge

	numReasons = iota + 1
)

var reasonNames = [...]string{
	NotJSON:    "not_json",
	Missing:    "missing",
	Lengths:    "lengths",
	Empty:      "empty",
	Type:       "type",
	Unwritable: "unwritable",
	TooLarge:   "too_large",
}

// Reasons lists every Reason, for exporting counters.
var Reasons = []Reason{NotJSON, Missing, Lengths, Empty, Type, Unwritable, TooLarge}

// String returns the reason's name, such as "not_json": a metric label.
func (r Reason) String() string {
	if int(r) < len(reasonNames) && reasonNames[r] != "" {
		return reasonNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// Skip is a message a writer did not write for one template.
type Skip struct {
	// Template is the template that could not render the message.
	Template Source
	// Message is the message; it must not be modified.
	Message *persist.Message
	// Reason is why, and Err the detail (naming the value and path).
	Reason Reason
	Err    error
}

// Error returns the skip as a sentence, such as `tsdb: templates.json
// topic "sample" (template 1): message 01J… (topic "sample") skipped
// (missing): tags.host: path […]: the payload has no key "data"`.
func (s *Skip) Error() string {
	id, top := "", ""
	if s.Message != nil {
		id, top = s.Message.ID, s.Message.Topic
	}
	return fmt.Sprintf("tsdb: %s: message %s (topic %q) skipped (%s): %v", s.Template, id, top, s.Reason, s.Err)
}

// skipError is why a message does not fit a template: a reason, the value
// (Where) and the detail.
type skipError struct {
	reason Reason
	where  string
	err    error
}

func (e *skipError) Error() string {
	if e.where == "" {
		return e.err.Error()
	}
	return e.where + ": " + e.err.Error()
}

func (e *skipError) Unwrap() []error { return []error{persist.ErrInvalid, e.err} }

// skipf returns a skipError of reason about where.
func skipf(reason Reason, where, format string, args ...any) *skipError {
	return &skipError{reason: reason, where: where, err: fmt.Errorf(format, args...)}
}

// Stats are a writer's counters since it was made. They count what
// Publish calls rendered: a batch that a pipeline retries is counted
// again.
type Stats struct {
	// Messages counts the messages given to Publish that a template
	// matched; Points counts the points (rows) rendered from them.
	Messages, Points uint64
	// Skipped counts, by reason, the messages skipped for a template.
	Skipped map[Reason]uint64
}

// SkippedTotal returns the sum of Skipped.
func (s Stats) SkippedTotal() uint64 {
	var n uint64
	for _, v := range s.Skipped {
		n += v
	}
	return n
}

// Reporter counts what a writer renders and skips, and hands each skip to
// a handler. The writers of this module embed one, so OnSkip and Stats are
// methods of every writer. It is safe for concurrent use; the zero value
// counts and reports to no handler.
type Reporter struct {
	messages, points atomic.Uint64
	skipped          [numReasons]atomic.Uint64
	handler          atomic.Pointer[func(Skip)]
}

// OnSkip sets the function called with each skipped message (nil: none),
// such as one that logs it. A writer calls it on the goroutine of Publish,
// so it must be quick and must not call the writer. Skips are counted in
// Stats whether or not a handler is set.
func (r *Reporter) OnSkip(fn func(Skip)) {
	if fn == nil {
		r.handler.Store(nil)
		return
	}
	r.handler.Store(&fn)
}

// Stats returns the counters.
func (r *Reporter) Stats() Stats {
	s := Stats{Messages: r.messages.Load(), Points: r.points.Load(), Skipped: make(map[Reason]uint64, len(Reasons))}
	for _, reason := range Reasons {
		s.Skipped[reason] = r.skipped[reason].Load()
	}
	return s
}

// skip counts and reports one skip.
func (r *Reporter) skip(src *Source, m *persist.Message, err *skipError) {
	r.skipped[err.reason].Add(1)
	if fn := r.handler.Load(); fn != nil {
		(*fn)(Skip{Template: *src, Message: m, Reason: err.reason, Err: err})
	}
}

// Skipped counts and reports that m was skipped for the template src: err
// is the error of a render method (AppendLines, AppendPuts, AppendJSON,
// AppendRows) or of SkipError, which gives the Reason (an error without
// one counts as Unwritable).
func (r *Reporter) Skipped(src *Source, m *persist.Message, err error) {
	se, ok := err.(*skipError)
	if !ok {
		se = &skipError{reason: Unwritable, err: err}
	}
	r.skip(src, m, se)
}

// Render renders each message of msgs with every template of set that
// matches its topic, through render (which appends the template's points
// for the message of s where the writer keeps them and returns how many),
// counting messages, points and skips in r. A Scope is taken from the pool
// for the call.
func Render[T any](r *Reporter, set *Set[T], msgs []*persist.Message, render func(s *Scope, t *T) (points int, err error)) {
	s := GetScope()
	defer PutScope(s)
	for _, m := range msgs {
		s.Reset(m)
		matched := false
		set.Each(m.Topic, func(i int, t *T) {
			matched = true
			n, err := render(s, t)
			if err != nil {
				r.Skipped(set.srcs[i], m, err)
				return
			}
			r.points.Add(uint64(n))
		})
		if matched {
			r.messages.Add(1)
		}
	}
}
