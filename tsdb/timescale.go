package tsdb

import (
	"fmt"
	"strconv"
	"strings"
)

// Timescale is a Timescale (PostgreSQL) template: {"name", "sql",
// "param_keys"}, all required. Each point it renders is one execution of
// SQL with $1…$n bound to the values of param_keys: values are bound,
// never spliced into the SQL.
type Timescale struct {
	Source
	// SQL is the statement, such as "insert into sensor_data(time,
	// location) values (NOW(), $1)".
	SQL string
	// Params are the values of $1…$n, in order.
	Params []Value
}

// LoadTimescale loads a Timescale template file (the seeds'
// emqx_backend_timescale.tmpl format).
func LoadTimescale(file string) (*Set[Timescale], error) {
	return loadNamed(file, nil)
}

// ParseTimescale parses a Timescale template file's contents; name names
// it in errors.
func ParseTimescale(name string, data []byte) (*Set[Timescale], error) {
	return loadNamed(name, data)
}

// loadNamed loads (data nil) or parses a Timescale file, whose template
// names must differ.
func loadNamed(name string, data []byte) (*Set[Timescale], error) {
	var s *Set[Timescale]
	var err error
	if data == nil {
		s, err = load(name, compileTimescale)
	} else {
		s, err = parse(name, data, compileTimescale)
	}
	if err != nil {
		return nil, err
	}
	seen := map[string]*Source{}
	for i, t := range s.list {
		if first, dup := seen[t.Name]; dup {
			return nil, &TemplateError{File: s.file, Topic: t.Topic, N: t.N, Where: "name",
				Err: fmt.Errorf("%q is the name of template %d (topic %q) too; names must differ", t.Name, first.N, first.Topic)}
		}
		seen[t.Name] = s.srcs[i]
		s.srcs[i].Name = t.Name
	}
	return s, nil
}

func compileTimescale(d *doc, i int32, src *Source) (*Timescale, *TemplateError) {
	f, err := fields(d, i, "name", "sql", "param_keys")
	if err != nil {
		return nil, err
	}
	t := &Timescale{Source: *src}
	for _, key := range []string{"name", "sql"} {
		v, err := need(d, f, key, "a string")
		if err != nil {
			return nil, err
		}
		if d.nodes[v].kind != jString {
			return nil, &TemplateError{Where: key, Err: fmt.Errorf("line %d: %s is %s; want a string", d.nodes[v].line, key, jkindName(d.nodes[v].kind))}
		}
		s := d.str(v)
		if strings.TrimSpace(s) == "" {
			return nil, &TemplateError{Where: key, Err: fmt.Errorf("line %d: %s is empty", d.nodes[v].line, key)}
		}
		if key == "name" {
			t.Name = s
		} else {
			t.SQL = s
		}
	}
	t.Source.Name = t.Name
	pk, err := need(d, f, "param_keys", `an array of the values of $1…$n, such as [["$payload", "temp"]]`)
	if err != nil {
		return nil, err
	}
	if d.nodes[pk].kind != jArray {
		return nil, &TemplateError{Where: "param_keys", Err: fmt.Errorf("line %d: param_keys is %s; want an array", d.nodes[pk].line, jkindName(d.nodes[pk].kind))}
	}
	e := pk + 1
	for j := range int(d.nodes[pk].n) {
		v, err := value(d, e, "param_keys["+strconv.Itoa(j)+"] ($"+strconv.Itoa(j+1)+")")
		if err != nil {
			return nil, err
		}
		t.Params = append(t.Params, v)
		e = d.nodes[e].next
	}
	used, perr := sqlParams(t.SQL)
	if perr != nil {
		return nil, &TemplateError{Where: "sql", Err: perr}
	}
	for n := 1; n <= max(used.max, len(t.Params)); n++ {
		switch {
		case n > len(t.Params):
			return nil, &TemplateError{Where: "sql", Err: fmt.Errorf("the SQL uses $%d but param_keys has %d values", n, len(t.Params))}
		case !used.has[n]:
			return nil, &TemplateError{Where: "param_keys", Err: fmt.Errorf("the SQL does not use $%d (param_keys has %d values; PostgreSQL needs each one used)", n, len(t.Params))}
		}
	}
	return t, nil
}

// usedParams are the $n a statement uses.
type usedParams struct {
	has map[int]bool
	max int
}

// sqlParams finds the $n parameters of a PostgreSQL statement, outside
// quoted strings ('…', E'…', $tag$…$tag$), quoted identifiers and
// comments.
func sqlParams(sql string) (usedParams, error) {
	u := usedParams{has: map[int]bool{}}
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'' || c == '"':
			end := i + 1
			for end < len(sql) {
				if sql[end] == c {
					if end+1 < len(sql) && sql[end+1] == c { // doubled: an escaped quote
						end += 2
						continue
					}
					break
				}
				if c == '\'' && sql[end] == '\\' && i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e') {
					end++ // E'…' takes backslash escapes
				}
				end++
			}
			if end >= len(sql) {
				return u, fmt.Errorf("unterminated %c at byte %d", c, i)
			}
			i = end + 1
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-':
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return u, fmt.Errorf("unterminated /* comment at byte %d", i)
			}
			i += end + 4
		case c == '$':
			j := i + 1
			for j < len(sql) && '0' <= sql[j] && sql[j] <= '9' {
				j++
			}
			if j > i+1 && (i == 0 || !isIdentByte(sql[i-1])) {
				n, err := strconv.Atoi(sql[i+1 : j])
				if err != nil || n < 1 || n > 65535 {
					return u, fmt.Errorf("parameter %s out of range", sql[i:j])
				}
				u.has[n] = true
				u.max = max(u.max, n)
				i = j
				continue
			}
			// A dollar-quoted string: $tag$ … $tag$.
			k := i + 1
			for k < len(sql) && isIdentByte(sql[k]) && !(k == i+1 && '0' <= sql[k] && sql[k] <= '9') {
				k++
			}
			if k < len(sql) && sql[k] == '$' && (i == 0 || !isIdentByte(sql[i-1])) {
				tag := sql[i : k+1]
				end := strings.Index(sql[k+1:], tag)
				if end < 0 {
					return u, fmt.Errorf("unterminated %s string at byte %d", tag, i)
				}
				i = k + 1 + end + len(tag)
				continue
			}
			i++
		default:
			i++
		}
	}
	return u, nil
}

func isIdentByte(c byte) bool {
	return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c >= 0x80
}

// AppendRows appends to rows the rows t renders for the message of s: one
// per point, each the arguments of $1…$n. A string, number, integer,
// boolean or JSON value is bound as text (PostgreSQL converts it to the
// column's type: a number stays exact), $payload as bytes, and null as
// NULL. A message that does not fit appends nothing and returns an error
// with its Reason (see ReasonOf).
func (t *Timescale) AppendRows(rows [][]any, s *Scope) ([][]any, error) {
	n, serr := s.eval(t.Params)
	if serr != nil {
		return rows, serr
	}
	args := make([]any, n*len(t.Params)) // one allocation for the message's rows
	for i := range n {
		row := args[i*len(t.Params) : (i+1)*len(t.Params) : (i+1)*len(t.Params)]
		for j := range t.Params {
			v := s.at(j, i)
			switch v.Kind {
			case Null:
				row[j] = nil
			case Bytes:
				row[j] = v.Text
			default:
				row[j] = string(v.Text)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}
