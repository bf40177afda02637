package sqlstore

import "strings"

// narrow is the SQL condition that narrows the rows a filter may match;
// exact says it matches exactly the right topics, so that no row read is
// dropped in Go.
type narrow struct {
	sql   string
	args  []any
	exact bool
}

// likeEscape is the LIKE escape character, the same in every dialect (a
// backslash would need escaping in MySQL string literals but not in the
// others).
const likeEscape = '!'

// topicNarrow returns the condition on the topic column col for the
// (non-shared) filter f: equality for a filter without wildcards, else an
// index range over the literal levels before the first wildcard (plus the
// parent for "a/#", which matches "a" [MQTT-4.7.1-2]) and a LIKE pattern
// for what follows. Matching is then finished with topic.Match.
func topicNarrow(col, f string) narrow {
	i := strings.IndexAny(f, "+#")
	if i < 0 {
		return narrow{sql: col + " = ?", args: []any{f}, exact: true}
	}
	lit, rest := f[:i], f[i:]
	var conds []string
	var args []any
	exact := false
	if lit != "" { // lit ends with '/'
		hi := lit[:len(lit)-1] + "0" // '0' follows '/'
		rng := col + " >= ? AND " + col + " < ?"
		if rest == "#" {
			exact = true
			if parent := lit[:len(lit)-1]; parent != "" {
				conds = append(conds, "("+col+" = ? OR ("+rng+"))")
				args = append(args, parent, lit, hi)
			} else {
				conds = append(conds, rng)
				args = append(args, lit, hi)
			}
		} else {
			conds = append(conds, rng)
			args = append(args, lit, hi)
		}
	}
	if strings.Trim(rest, "+#/") != "" {
		conds = append(conds, col+" LIKE ? ESCAPE '"+string(likeEscape)+"'")
		args = append(args, likePattern(f))
	}
	if len(conds) == 0 {
		return narrow{sql: "1 = 1", exact: false}
	}
	return narrow{sql: strings.Join(conds, " AND "), args: args, exact: exact}
}

// likePattern returns a LIKE pattern that every topic matching the filter
// f matches: '+' becomes '%', a final "/#" (or a lone "#") '%', and literal
// '%', '_' and the escape character are escaped.
func likePattern(f string) string {
	var b strings.Builder
	if f == "#" {
		return "%"
	}
	f, hash := strings.CutSuffix(f, "/#")
	for _, c := range []byte(f) {
		switch c {
		case '+':
			b.WriteByte('%')
		case '%', '_', likeEscape:
			b.WriteByte(likeEscape)
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	if hash {
		b.WriteByte('%')
	}
	return b.String()
}
