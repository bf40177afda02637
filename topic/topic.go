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
	var flags uint8
	for i, start, level := 0, 0, 0; ; i++ {
		if i < len(s) {
			if cl := class[s[i]]; cl != clSlash {
				flags |= cl
				continue
			}
		}
		// s[start:i] is a whole level.
		last := i == len(s)
		if flags != 0 || shared && (level == 1 || level == 2) {
			if p := checkLevel(s[start:i], level, flags, filter, shared, last); !p.ok() {
				return p
			}
		}
		if last {
			return problem{}
		}
		flags, start = 0, i+1
		level++
	}
}

// Byte classes for check, combined with OR over a level.
const (
	clHigh = 1 << iota // a byte of a multi-byte UTF-8 sequence, or an invalid one
	clNUL
	clPlus
	clHash
	clSlash // the level separator; never combined into a level's flags
)

// class maps a byte to its class bits; ordinary bytes are 0.
var class = func() (t [256]uint8) {
	for c := utf8.RuneSelf; c < 256; c++ {
		t[c] = clHigh
	}
	t[0], t['+'], t['#'], t['/'] = clNUL, clPlus, clHash, clSlash
	return t
}()

// checkLevel checks level number level, lv, whose bytes have the class bits flags; last is true for the last level.
func checkLevel(lv string, level int, flags uint8, filter, shared, last bool) problem {
	plus, hash := flags&clPlus != 0, flags&clHash != 0
	switch {
	case flags&clHigh != 0 && !utf8.ValidString(lv):
		return problem{level, "invalid UTF-8 [MQTT-1.5.4-1]"}
	case flags&clNUL != 0:
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
	// A plain loop: levels are short, and strings.IndexByte costs more than it saves on a few bytes.
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}
