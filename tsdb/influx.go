package tsdb

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Influx is an InfluxDB template: {"measurement", "tags", "fields",
// "timestamp"}, measurement and fields required. Each point it renders is
// one line of InfluxDB line protocol.
type Influx struct {
	Source
	Measurement Value
	// Tags and Fields are sorted by key.
	Tags, Fields []Pair
	// Timestamp is absent (IsZero) when the template has none.
	Timestamp Value

	vals []Value // measurement, tags, fields, timestamp (if any)
}

// LoadInflux loads an InfluxDB template file (the seeds'
// emqx_backend_influxdb.tmpl format).
func LoadInflux(file string) (*Set[Influx], error) { return load(file, compileInflux) }

// ParseInflux parses an InfluxDB template file's contents; name names it
// in errors.
func ParseInflux(name string, data []byte) (*Set[Influx], error) {
	return parse(name, data, compileInflux)
}

func compileInflux(d *doc, i int32, src *Source) (*Influx, *TemplateError) {
	f, err := fields(d, i, "measurement", "tags", "fields", "timestamp")
	if err != nil {
		return nil, err
	}
	t := &Influx{Source: *src}
	m, err := need(d, f, "measurement", `the measurement's name, such as "$topic"`)
	if err != nil {
		return nil, err
	}
	if t.Measurement, err = value(d, m, "measurement"); err != nil {
		return nil, err
	}
	if v, ok := f["tags"]; ok {
		if t.Tags, err = pairs(d, v, "tags", influxKey); err != nil {
			return nil, err
		}
	}
	v, err := need(d, f, "fields", `an object of field keys and values, such as {"temperature": ["$payload", "temp"]}`)
	if err != nil {
		return nil, err
	}
	if t.Fields, err = pairs(d, v, "fields", influxKey); err != nil {
		return nil, err
	}
	if len(t.Fields) == 0 {
		return nil, &TemplateError{Where: "fields", Err: errors.New("no field (InfluxDB needs at least one)")}
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
	for _, p := range t.Fields {
		t.vals = append(t.vals, p.Value)
	}
	if !t.Timestamp.IsZero() {
		t.vals = append(t.vals, t.Timestamp)
	}
	return t, nil
}

// influxKey checks a tag or field key, which is the same for every point.
func influxKey(key string) error {
	switch {
	case key == "":
		return errors.New("empty")
	case key == "time":
		return errors.New(`InfluxDB refuses "time" as a tag or field key`)
	}
	return lineWritable([]byte(key), false, false)
}

// LineOptions are how Influx templates render line protocol.
type LineOptions struct {
	// Precision is the unit of the timestamps written, the precision the
	// write request declares: time.Nanosecond (also 0), Microsecond,
	// Millisecond, Second, Minute or Hour.
	Precision time.Duration
	// ServerTime leaves the timestamp out of the points of a template
	// without "timestamp", so that the server stamps them on arrival;
	// by default such points get the message's time (the seeds'
	// set_timestamp = true).
	ServerTime bool
	// V2 writes for a server that reads the InfluxDB 2.x protocol (2.x,
	// 3.x, VictoriaMetrics): it escapes backslashes in measurements, tags
	// and field keys, which InfluxDB 1.x reads literally.
	V2 bool
}

// maxKeyLen is InfluxDB's longest series key (measurement and tags).
const maxKeyLen = 65535

// AppendLines appends the points t renders for the message of s as lines
// of line protocol ("\n" after each) to dst, and the end offset of each
// line to ends. A message that does not fit the template appends nothing
// and returns an error matching persist.ErrInvalid with its Reason (see
// ReasonOf): a template skip, never a partial point.
func (t *Influx) AppendLines(dst []byte, s *Scope, o *LineOptions, ends []int) ([]byte, []int, error) {
	n, serr := s.eval(t.vals)
	if serr != nil {
		return dst, ends, serr
	}
	mark, marks := len(dst), len(ends)
	prec := o.Precision
	if prec <= 0 {
		prec = time.Nanosecond
	}
	for i := range n {
		var err *skipError
		if dst, err = t.appendLine(dst, s, i, prec, o); err != nil {
			return dst[:mark], ends[:marks], err
		}
		ends = append(ends, len(dst))
	}
	return dst, ends, nil
}

func (t *Influx) appendLine(dst []byte, s *Scope, i int, prec time.Duration, o *LineOptions) ([]byte, *skipError) {
	start := len(dst)
	mclass, kclass := uint8(measurementSpecial), uint8(keySpecial)
	if o.V2 {
		mclass, kclass = mclass|backslashSpecial, kclass|backslashSpecial
	}
	j := 0
	m := s.at(j, i)
	j++
	if m.Kind == Null || len(m.Text) == 0 {
		return dst, skipf(Empty, "measurement", "%s is empty", t.Measurement.Text)
	}
	if m.Text[0] == '#' {
		return dst, skipf(Unwritable, "measurement", "%q starts with '#', which line protocol reads as a comment", m.Text)
	}
	var err error
	if dst, err = appendLineText(dst, m.Text, mclass, true, o.V2); err != nil {
		return dst, &skipError{reason: Unwritable, where: "measurement", err: fmt.Errorf("%q: %w", m.Text, err)}
	}
	for _, p := range t.Tags {
		v := s.at(j, i)
		j++
		if v.Kind == Null || len(v.Text) == 0 {
			continue // InfluxDB has no empty tag: the tag is left out
		}
		dst = append(dst, ',')
		dst = appendEscaped(dst, bytesOf(p.Key), kclass)
		dst = append(dst, '=')
		if dst, err = appendLineText(dst, v.Text, kclass, false, o.V2); err != nil {
			return dst, &skipError{reason: Unwritable, where: "tags." + p.Key, err: fmt.Errorf("%q: %w", v.Text, err)}
		}
	}
	if len(dst)-start > maxKeyLen {
		return dst, skipf(TooLarge, "tags", "the series key (measurement and tags) has %d bytes; InfluxDB takes at most %d", len(dst)-start, maxKeyLen)
	}
	sep := byte(' ')
	for _, p := range t.Fields {
		v := s.at(j, i)
		j++
		if v.Kind == Null {
			continue // a null field is left out
		}
		dst = append(dst, sep)
		sep = ','
		dst = appendEscaped(dst, bytesOf(p.Key), kclass)
		dst = append(dst, '=')
		switch v.Kind {
		case Number:
			if bytes.IndexAny(v.Text, "eE") >= 0 {
				if _, err := strconv.ParseFloat(string(v.Text), 64); err != nil {
					return dst, skipf(Type, "fields."+p.Key, "number %s is out of a float's range", v.Text)
				}
			}
			dst = append(dst, v.Text...)
		case Int:
			dst = append(dst, v.Text...)
			dst = append(dst, 'i')
		case Bool:
			dst = append(dst, v.Text...)
		default: // String, JSON, Bytes
			dst = appendFieldString(dst, v.Text)
		}
	}
	if sep == ' ' {
		return dst, skipf(Empty, "fields", "no field has a value (all are null)")
	}
	switch {
	case !t.Timestamp.IsZero():
		v := s.at(j, i)
		ts, err := timestamp(&t.Timestamp, v, s, prec)
		if err != nil {
			return dst, err
		}
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, ts, 10)
	case !o.ServerTime:
		dst = append(dst, ' ')
		dst = strconv.AppendInt(dst, inPrecision(s.when, prec), 10)
	}
	return append(dst, '\n'), nil
}

// inPrecision returns t in units of prec since 1970.
func inPrecision(t time.Time, prec time.Duration) int64 {
	switch prec {
	case time.Nanosecond:
		return t.UnixNano()
	case time.Microsecond:
		return t.UnixMicro()
	case time.Millisecond:
		return t.UnixMilli()
	case time.Second:
		return t.Unix()
	}
	return t.UnixNano() / int64(prec)
}

// timestamp returns the timestamp value v of template value tv in units of
// prec: the message's time for $timestamp, an integer as the payload
// gives it (taken to be in the writer's precision), or an RFC 3339 time.
func timestamp(tv *Value, v Scalar, s *Scope, prec time.Duration) (int64, *skipError) {
	if tv.ph == phTimestamp {
		return inPrecision(s.when, prec), nil
	}
	switch v.Kind {
	case Int, Number:
		ts, err := strconv.ParseInt(string(v.Text), 10, 64)
		if err != nil {
			return 0, skipf(Type, "timestamp", "%s is not an integer", v.Text)
		}
		return ts, nil
	case String:
		at, err := time.Parse(time.RFC3339Nano, string(v.Text))
		if err != nil {
			return 0, skipf(Type, "timestamp", "%q is neither an integer nor an RFC 3339 time", v.Text)
		}
		return inPrecision(at, prec), nil
	}
	return 0, skipf(Type, "timestamp", "%s is %s, not an integer or an RFC 3339 time", tv.Text, v.Kind)
}

// The bytes line protocol escapes with a backslash: in measurements, and
// in tag keys, tag values and field keys; backslashSpecial adds the
// backslash itself (the 2.x protocol).
const (
	measurementSpecial = 1 << iota
	keySpecial
	backslashSpecial
)

var lineSpecial = [256]uint8{
	',':  measurementSpecial | keySpecial,
	' ':  measurementSpecial | keySpecial,
	'=':  keySpecial,
	'\\': backslashSpecial,
}

// appendEscaped appends s with the bytes special in its place escaped.
func appendEscaped(dst, s []byte, class uint8) []byte {
	from := 0
	for i, c := range s {
		if lineSpecial[c]&class != 0 {
			dst = append(dst, s[from:i]...)
			dst = append(dst, '\\', c)
			from = i + 1
		}
	}
	return append(dst, s[from:]...)
}

// appendLineText appends s escaped for its place (see appendEscaped) when
// it can be written there (see lineWritable), in one pass.
func appendLineText(dst, s []byte, class uint8, measurement, v2 bool) ([]byte, error) {
	from := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\n' || c == '\r':
			return dst, lineWritable(s, measurement, v2)
		case c == '\\' && !v2:
			j := i
			for j < len(s) && s[j] == '\\' {
				j++
			}
			if j == len(s) || lineSpecial[s[j]]&class != 0 {
				return dst, lineWritable(s, measurement, v2)
			}
			i = j - 1
		case lineSpecial[c]&class != 0:
			dst = append(dst, s[from:i]...)
			dst = append(dst, '\\', c)
			from = i + 1
		}
	}
	return append(dst, s[from:]...), nil
}

// lineWritable reports why s cannot be written as a measurement, tag key,
// tag value or field key so that the server reads it back as it is. Line
// protocol has no escape for a newline. InfluxDB 1.x reads a backslash
// literally unless a byte it escapes follows, so there a run of
// backslashes before such a byte (or at the end) cannot be written; the
// 2.x protocol (and VictoriaMetrics) reads "\\" as one backslash, so with
// v2 every backslash is escaped and only newlines are refused.
func lineWritable(s []byte, measurement, v2 bool) error {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\n', '\r':
			return errors.New("line protocol cannot carry a newline or carriage return here")
		case '\\':
			if v2 {
				continue
			}
			j := i
			for j < len(s) && s[j] == '\\' {
				j++
			}
			switch {
			case j == len(s):
				return errors.New("InfluxDB 1.x line protocol cannot carry a trailing backslash here")
			case s[j] == ',' || s[j] == ' ' || (s[j] == '=' && !measurement):
				return fmt.Errorf("InfluxDB 1.x line protocol cannot carry a backslash before %q here", s[j])
			}
			i = j - 1
		}
	}
	return nil
}

// appendFieldString appends s as a string field value: quoted, with '"'
// and '\' escaped (newlines are kept: line protocol allows them in quoted
// strings).
func appendFieldString(dst, s []byte) []byte {
	dst = append(dst, '"')
	from := 0
	for i, c := range s {
		if c == '"' || c == '\\' {
			dst = append(dst, s[from:i]...)
			dst = append(dst, '\\', c)
			from = i + 1
		}
	}
	dst = append(dst, s[from:]...)
	return append(dst, '"')
}

// ReasonOf returns the Reason of a template skip returned by a render
// method (AppendLines, AppendPuts, AppendJSON, AppendRows), or 0.
func ReasonOf(err error) Reason {
	var se *skipError
	if errors.As(err, &se) {
		return se.reason
	}
	return 0
}

// SkipError returns an error a writer reports as a skip of reason (see
// Reporter.Skipped), such as a point too large for its transport.
func SkipError(reason Reason, err error) error {
	return &skipError{reason: reason, err: err}
}
