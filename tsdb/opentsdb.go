package tsdb

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// OpenTSDB is an OpenTSDB template: {"measurement", "tags", "value",
// "timestamp"}, measurement (the metric) and value required. Each point it
// renders is one data point.
type OpenTSDB struct {
	Source
	Measurement Value
	// Tags are sorted by key.
	Tags      []Pair
	Value     Value
	Timestamp Value // absent (IsZero) when the template has none

	vals []Value // measurement, tags, value, timestamp (if any)
}

// LoadOpenTSDB loads an OpenTSDB template file (the seeds'
// emqx_backend_opentsdb.tmpl format).
func LoadOpenTSDB(file string) (*Set[OpenTSDB], error) { return load(file, compileOpenTSDB) }

// ParseOpenTSDB parses an OpenTSDB template file's contents; name names
// it in errors.
func ParseOpenTSDB(name string, data []byte) (*Set[OpenTSDB], error) {
	return parse(name, data, compileOpenTSDB)
}

func compileOpenTSDB(d *doc, i int32, src *Source) (*OpenTSDB, *TemplateError) {
	f, err := fields(d, i, "measurement", "tags", "value", "timestamp")
	if err != nil {
		return nil, err
	}
	t := &OpenTSDB{Source: *src}
	m, err := need(d, f, "measurement", `the metric's name, such as "$topic"`)
	if err != nil {
		return nil, err
	}
	if t.Measurement, err = value(d, m, "measurement"); err != nil {
		return nil, err
	}
	if v, ok := f["tags"]; ok {
		if t.Tags, err = pairs(d, v, "tags", tsdbKey); err != nil {
			return nil, err
		}
	}
	v, err := need(d, f, "value", `the data point's number, such as ["$payload", "temp"]`)
	if err != nil {
		return nil, err
	}
	if t.Value, err = value(d, v, "value"); err != nil {
		return nil, err
	}
	if v, ok := f["timestamp"]; ok {
		if t.Timestamp, err = value(d, v, "timestamp"); err != nil {
			return nil, err
		}
	}
	t.vals = append(t.vals, t.Measurement)
	for _, p := range t.Tags {
		t.vals = append(t.vals, p.Value)
	}
	t.vals = append(t.vals, t.Value)
	if !t.Timestamp.IsZero() {
		t.vals = append(t.vals, t.Timestamp)
	}
	return t, nil
}

// tsdbKey checks a tag key.
func tsdbKey(key string) error {
	if key == "" {
		return errors.New("empty")
	}
	return tsdbWritable([]byte(key))
}

// tsdbWritable reports why OpenTSDB refuses s as a metric, tag key or tag
// value: it takes letters, digits and "-_./" only (it has no escapes, so
// in the telnet protocol a space would split the line).
func tsdbWritable(s []byte) error {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '/') {
				return fmt.Errorf("OpenTSDB takes letters, digits and -_./ only, not %q", c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			return errors.New("not valid UTF-8")
		}
		if !unicode.IsLetter(r) {
			return fmt.Errorf("OpenTSDB takes letters, digits and -_./ only, not %q", r)
		}
		i += size
	}
	return nil
}

// PointOptions are how OpenTSDB templates render data points.
type PointOptions struct {
	// Precision is the unit of timestamps: time.Second (also 0) or
	// time.Millisecond. It applies to $timestamp and to templates without
	// "timestamp" (the message's time); a timestamp from the payload is
	// written as it is.
	Precision time.Duration
}

// tsdbPoint is one rendered data point (texts valid until the Scope's
// next Reset).
type tsdbPoint struct {
	metric []byte
	ts     int64
	value  []byte
	tags   [][2][]byte
}

// point renders point i of the last eval into p.
func (t *OpenTSDB) point(s *Scope, i int, prec time.Duration, p *tsdbPoint) *skipError {
	j := 0
	m := s.at(j, i)
	j++
	if m.Kind == Null || len(m.Text) == 0 {
		return skipf(Empty, "measurement", "%s is empty", t.Measurement.Text)
	}
	if err := tsdbWritable(m.Text); err != nil {
		return &skipError{reason: Unwritable, where: "measurement", err: fmt.Errorf("%q: %w", m.Text, err)}
	}
	p.metric = m.Text
	p.tags = p.tags[:0]
	for _, tag := range t.Tags {
		v := s.at(j, i)
		j++
		if v.Kind == Null || len(v.Text) == 0 {
			continue // OpenTSDB has no empty tag value: the tag is left out
		}
		if err := tsdbWritable(v.Text); err != nil {
			return &skipError{reason: Unwritable, where: "tags." + tag.Key, err: fmt.Errorf("%q: %w", v.Text, err)}
		}
		p.tags = append(p.tags, [2][]byte{bytesOf(tag.Key), v.Text})
	}
	v := s.at(j, i)
	j++
	switch v.Kind {
	case Number:
		if bytes.IndexAny(v.Text, "eE") >= 0 {
			if _, err := strconv.ParseFloat(string(v.Text), 64); err != nil {
				return skipf(Type, "value", "number %s is out of a float's range", v.Text)
			}
		}
	case Int:
	default:
		return skipf(Type, "value", "%s is %s; OpenTSDB takes numbers only", t.Value.Text, v.Kind)
	}
	p.value = v.Text
	if !t.Timestamp.IsZero() {
		ts, err := timestamp(&t.Timestamp, s.at(j, i), s, prec)
		if err != nil {
			return err
		}
		p.ts = ts
	} else {
		p.ts = inPrecision(s.when, prec)
	}
	return nil
}

// AppendPuts appends the data points t renders for the message of s as
// telnet put lines ("put <metric> <timestamp> <value> <tagk>=<tagv> …\n")
// to dst, and the end offset of each to ends. A message that does not fit
// appends nothing and returns an error with its Reason (see ReasonOf).
func (t *OpenTSDB) AppendPuts(dst []byte, s *Scope, o *PointOptions, ends []int) ([]byte, []int, error) {
	return t.appendPoints(dst, s, o, ends, appendPut)
}

// AppendJSON appends the data points t renders for the message of s as
// JSON objects of OpenTSDB's /api/put ({"metric", "timestamp", "value",
// "tags"}), each followed by a comma, to dst, and the end offset of each
// (after its comma) to ends.
func (t *OpenTSDB) AppendJSON(dst []byte, s *Scope, o *PointOptions, ends []int) ([]byte, []int, error) {
	return t.appendPoints(dst, s, o, ends, appendPointJSON)
}

func (t *OpenTSDB) appendPoints(dst []byte, s *Scope, o *PointOptions, ends []int, enc func([]byte, *tsdbPoint) []byte) ([]byte, []int, error) {
	n, serr := s.eval(t.vals)
	if serr != nil {
		return dst, ends, serr
	}
	prec := o.Precision
	if prec <= 0 {
		prec = time.Second
	}
	mark, marks := len(dst), len(ends)
	p := &s.point // reused: no allocation per message
	for i := range n {
		if err := t.point(s, i, prec, p); err != nil {
			return dst[:mark], ends[:marks], err
		}
		dst = enc(dst, p)
		ends = append(ends, len(dst))
	}
	return dst, ends, nil
}

func appendPut(dst []byte, p *tsdbPoint) []byte {
	dst = append(dst, "put "...)
	dst = append(dst, p.metric...)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, p.ts, 10)
	dst = append(dst, ' ')
	dst = append(dst, p.value...)
	for _, kv := range p.tags {
		dst = append(dst, ' ')
		dst = append(dst, kv[0]...)
		dst = append(dst, '=')
		dst = append(dst, kv[1]...)
	}
	return append(dst, '\n')
}

// appendPointJSON writes a point as JSON; metric and tags hold only
// letters, digits and -_./ (tsdbWritable), which JSON strings take as
// they are.
func appendPointJSON(dst []byte, p *tsdbPoint) []byte {
	dst = append(dst, `{"metric":"`...)
	dst = append(dst, p.metric...)
	dst = append(dst, `","timestamp":`...)
	dst = strconv.AppendInt(dst, p.ts, 10)
	dst = append(dst, `,"value":`...)
	dst = append(dst, p.value...)
	dst = append(dst, `,"tags":{`...)
	for i, kv := range p.tags {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, kv[0]...)
		dst = append(dst, `":"`...)
		dst = append(dst, kv[1]...)
		dst = append(dst, '"')
	}
	return append(dst, "}},"...)
}
