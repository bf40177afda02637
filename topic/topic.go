package topic

import (
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLen is the largest topic name or filter in bytes, the limit of an MQTT UTF-8 string.
const MaxLen = 65535

// sharePrefix starts every shared subscription filter.
const sharePrefix = "$share/"

// ErrInvalid is matched by every validation error of this package via errors.Is.
var ErrInvalid = errors.New("topic: invalid")

// Error is a topic name or filter that breaks an MQTT rule, naming the level and the rule.
type Error struct {
	// Topic is the whole name or filter as given.
	Topic string
	// Filter is true when Topic was checked as a subscription filter, false for a topic name.
	Filter bool
	// Level is the 0-based index of the offending level, or -1 when the problem is not about one level.
	Level int
	// Reason says what is wrong and cites the spec clause, such as "'#' must be alone in its level [MQTT-4.7.1-2]".
	Reason string
}

// Error returns a message such as `topic: invalid filter "a/b#/c": level 1 "b#": '#' must be alone in its level [MQTT-4.7.1-2]`.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("topic: invalid ")
	if e.Filter {
		b.WriteString("filter ")
	} else {
		b.WriteString("name ")
	}
	b.WriteString(quote(e.Topic))
	if e.Level >= 0 {
		b.WriteString(": level ")
		b.WriteString(strconv.Itoa(e.Level))
		b.WriteByte(' ')
		b.WriteString(quote(levelAt(e.Topic, e.Level)))
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Is reports whether target is ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// quote quotes s for an error message, shortening very long strings.
func quote(s string) string {
	const keep = 64
	if len(s) <= 2*keep {
		return strconv.Quote(s)
	}
	cut := keep
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + "... (" + strconv.Itoa(len(s)) + " bytes)"
}

// levelAt returns level i of s, or "" when s has fewer levels.
func levelAt(s string, i int) string {
	for ; i > 0; i-- {
		j := strings.IndexByte(s, '/')
		if j < 0 {
			return ""
		}
		s = s[j+1:]
	}
	if j := strings.IndexByte(s, '/'); j >= 0 {
		return s[:j]
	}
	return s
}

// ValidateName returns nil if name is a valid PUBLISH topic name, or an *Error saying what is wrong.
func ValidateName(name string) error {
	return check(name, false).err(name, false)
}

// ValidateFilter returns nil if filter is a valid subscription filter (plain or $share/<group>/<filter>), or an *Error saying what is wrong.
func ValidateFilter(filter string) error {
	return check(filter, true).err(filter, true)
}

// problem is the first rule a topic breaks; reason is empty when it breaks none.
type problem struct {
	level  int
	reason string
}

// err turns p into an *Error for topic s, or nil when there is no problem.
func (p problem) err(s string, filter bool) error {
	if p.reason == "" {
		return nil
	}
	return &Error{Topic: s, Filter: filter, Level: p.level, Reason: p.reason}
}

// ok reports whether there is no problem.
func (p problem) ok() bool { return p.reason == "" }

// check finds the first rule that s, a name or a filter, breaks. It does not allocate.
func check(s string, filter bool) problem {
	if s == "" {
		return problem{-1, "must not be empty [MQTT-4.7.3-1]"}
	}
	if len(s) > MaxLen {
		return problem{-1, "is " + strconv.Itoa(len(s)) + " bytes, more than 65535 [MQTT-4.7.3-3]"}
	}
	shared := filter && strings.HasPrefix(s, sharePrefix)
	level, start := 0, 0
	var high, nul, plus, hash bool
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			switch c := s[i]; {
			case c == '/':
			case c >= utf8.RuneSelf:
				high = true
				continue
			case c == 0:
				nul = true
				continue
			case c == '+':
				plus = true
				continue
			case c == '#':
				hash = true
				continue
			default:
				continue
			}
		}
		// s[start:i] is a complete level.
		lv, last := s[start:i], i == len(s)
		switch {
		case high && !utf8.ValidString(lv):
			return problem{level, "invalid UTF-8 [MQTT-1.5.4-1]"}
		case nul:
			return problem{level, "must not contain U+0000 [MQTT-4.7.3-2]"}
		case !filter && plus:
			return problem{level, "wildcard '+' is not allowed in a topic name [MQTT-3.3.2-2]"}
		case !filter && hash:
			return problem{level, "wildcard '#' is not allowed in a topic name [MQTT-3.3.2-2]"}
		case shared && level == 1:
			switch {
			case lv == "":
				return problem{level, "share name must not be empty [MQTT-4.8.2-1]"}
			case plus:
				return problem{level, "share name must not contain '+' [MQTT-4.8.2-2]"}
			case hash:
				return problem{level, "share name must not contain '#' [MQTT-4.8.2-2]"}
			case last:
				return problem{level, "share name must be followed by '/' and a topic filter [MQTT-4.8.2-2]"}
			}
		case shared && level == 2 && last && lv == "":
			return problem{level, "topic filter after the share name must not be empty [MQTT-4.8.2-2]"}
		case hash && lv != "#":
			return problem{level, "'#' must be alone in its level [MQTT-4.7.1-2]"}
		case hash && !last:
			return problem{level, "'#' must be the last level [MQTT-4.7.1-2]"}
		case plus && lv != "+":
			return problem{level, "'+' must be alone in its level [MQTT-4.7.1-3]"}
		}
		high, nul, plus, hash = false, false, false, false
		start = i + 1
		level++
	}
	return problem{}
}

// body validates filter and returns the filter that does the matching: the filter itself, or the part after the share name of a shared filter.
func body(filter string) (string, bool) {
	if !check(filter, true).ok() {
		return "", false
	}
	if rest, ok := strings.CutPrefix(filter, sharePrefix); ok {
		return rest[strings.IndexByte(rest, '/')+1:], true
	}
	return filter, true
}

// Shared splits a valid shared subscription filter "$share/<group>/<inner>" into its share name and inner filter; ok is false for any other filter, including an invalid shared one.
func Shared(filter string) (group, inner string, ok bool) {
	rest, found := strings.CutPrefix(filter, sharePrefix)
	if !found || !check(filter, true).ok() {
		return "", "", false
	}
	group, inner, _ = strings.Cut(rest, "/")
	return group, inner, true
}

// next splits s at its first '/' into the first level and the rest; more is false when s is the last level.
func next(s string) (level, rest string, more bool) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:], true
	}
	return s, "", false
}
