package action

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Vars are the values of template variables by name. MessageVars,
// ClientVars, SubscriptionVars and AckVars build them for the broker's
// events; a name that is missing has the value nil.
type Vars map[string]any

// Variable names of the events: the parameters the reference backends give
// their SQL and Redis actions (see "Schema names" in package persist), plus
// a few more fields.
var (
	messageVarNames      = []string{"msgid", "topic", "payload", "qos", "retain", "clientid", "username", "peerhost", "node", "timestamp", "expiry", "mode"}
	clientVarNames       = []string{"clientid", "username", "peerhost", "node", "state", "online_at", "offline_at", "timestamp"}
	subscriptionVarNames = []string{"clientid", "topic", "qos"}
	ackVarNames          = []string{"clientid", "msgid", "topic"}
)

// VarNames returns the variable names available to actions of the events
// in e: client variables for OnConnected, subscription variables for
// OnSubscribed, message variables for OnPublish, OnRetain and OnFetch, and
// ack variables for OnAcked and OnDelivered (events of package persist).
// VarNames(persist.AllEvents) is every name the package knows.
func VarNames(e persist.Event) []string {
	var out []string
	seen := map[string]bool{}
	add := func(names []string) {
		for _, n := range names {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	if e&(persist.OnPublish|persist.OnRetain|persist.OnFetch) != 0 {
		add(messageVarNames)
	}
	if e&persist.OnConnected != 0 {
		add(clientVarNames)
	}
	if e&persist.OnSubscribed != 0 {
		add(subscriptionVarNames)
	}
	if e&(persist.OnAcked|persist.OnDelivered) != 0 {
		add(ackVarNames)
	}
	return out
}

// MessageVars returns the variables of a published or retained message:
// msgid, topic, payload ([]byte, never nil), qos (int), retain (int 0 or
// 1), clientid (the publisher), username, peerhost, node, timestamp
// (time.Time the message arrived, nil when unset), expiry (time.Time, nil
// for never) and mode ("queue" or "fanout").
func MessageVars(m *persist.Message) Vars {
	payload := m.Payload
	if payload == nil {
		payload = []byte{}
	}
	return Vars{
		"msgid":     m.ID,
		"topic":     m.Topic,
		"payload":   payload,
		"qos":       int(m.QoS),
		"retain":    boolInt(m.Retain),
		"clientid":  m.From,
		"username":  m.Username,
		"peerhost":  m.PeerHost,
		"node":      m.Node,
		"timestamp": timeVar(m.Time),
		"expiry":    timeVar(m.Expiry),
		"mode":      m.Mode.String(),
	}
}

// ClientVars returns the variables of a connect or disconnect: clientid,
// username, peerhost, node, state (int 1 online, 0 offline), online_at and
// offline_at (time.Time, nil when unset) and timestamp (online_at for a
// connect, offline_at for a disconnect).
func ClientVars(c *persist.Client) Vars {
	ts := c.OfflineAt
	if c.Online {
		ts = c.OnlineAt
	}
	return Vars{
		"clientid":   c.ID,
		"username":   c.Username,
		"peerhost":   c.PeerHost,
		"node":       c.Node,
		"state":      boolInt(c.Online),
		"online_at":  timeVar(c.OnlineAt),
		"offline_at": timeVar(c.OfflineAt),
		"timestamp":  timeVar(ts),
	}
}

// SubscriptionVars returns the variables of a subscribe or unsubscribe:
// clientid, topic (the filter) and qos (int).
func SubscriptionVars(clientID string, s persist.Subscription) Vars {
	return Vars{"clientid": clientID, "topic": s.Filter, "qos": int(s.QoS)}
}

// AckVars returns the variables of an ack (or delivery): clientid, msgid
// and topic.
func AckVars(clientID string, a persist.Ack) Vars {
	return Vars{"clientid": clientID, "msgid": a.ID, "topic": a.Topic}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func timeVar(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// part is literal text, or a variable when name is set.
type part struct {
	lit  string
	name string
}

// parseParts splits text into literal text and variables, checking every
// variable against allowed.
// what names the text in errors.
func parseParts(text string, allowed []string, what string) ([]part, error) {
	var parts []part
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			parts = append(parts, part{lit: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(text); {
		switch {
		case strings.HasPrefix(text[i:], "$${"):
			lit.WriteString("${")
			i += 3
		case strings.HasPrefix(text[i:], "${"):
			end := strings.IndexByte(text[i+2:], '}')
			if end < 0 {
				return nil, persist.Errorf(persist.ErrInvalid, "action: %s: unterminated ${ at offset %d (write $${ for a literal ${)", what, i)
			}
			name := text[i+2 : i+2+end]
			if !validVarName(name) {
				return nil, persist.Errorf(persist.ErrInvalid, "action: %s: bad variable name ${%s} at offset %d (want letters, digits and _)", what, name, i)
			}
			if !contains(allowed, name) {
				return nil, persist.Errorf(persist.ErrInvalid, "action: %s: unknown variable ${%s} (allowed: %s)", what, name, strings.Join(allowed, ", "))
			}
			flush()
			parts = append(parts, part{name: name})
			i += 2 + end + 1
		default:
			lit.WriteByte(text[i])
			i++
		}
	}
	flush()
	return parts, nil
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func allowedOrAll(allowed []string) []string {
	if len(allowed) == 0 {
		return VarNames(persist.AllEvents | persist.OnDelivered)
	}
	return allowed
}

// Template is a parsed action text with ${name} variables, compiled to a
// query with bind placeholders by SQL (for SQL and CQL).
type Template struct {
	text  string
	parts []part
}

// ParseTemplate parses text, whose variables must be among allowed (all
// names VarNames knows when allowed is empty). An unknown or malformed
// ${name} and an unterminated ${ are errors matching persist.ErrInvalid.
//
// Write variables bare, as the reference backends do
// (values(${clientid})), not inside quotes: each becomes a bind
// placeholder, and '?' inside quotes is a string, not a placeholder.
func ParseTemplate(text string, allowed ...string) (*Template, error) {
	parts, err := parseParts(text, allowedOrAll(allowed), "template "+strconv.Quote(text))
	if err != nil {
		return nil, err
	}
	return &Template{text: text, parts: parts}, nil
}

// String returns the text the template was parsed from.
func (t *Template) String() string { return t.text }

// Names returns the template's variables in order; a variable used twice
// is listed twice.
func (t *Template) Names() []string {
	var names []string
	for _, p := range t.parts {
		if p.name != "" {
			names = append(names, p.name)
		}
	}
	return names
}

// PlaceholderQuestion is the placeholder style "?" (MySQL, SQLite, CQL).
func PlaceholderQuestion(int) string { return "?" }

// PlaceholderDollar is the placeholder style "$1", "$2", … (PostgreSQL).
func PlaceholderDollar(n int) string { return "$" + strconv.Itoa(n) }

// SQL returns the template's text with the n-th variable (from 1) replaced
// by placeholder(n), and the variable names in placeholder order; a nil
// placeholder means PlaceholderQuestion.
func (t *Template) SQL(placeholder func(n int) string) (query string, names []string) {
	if placeholder == nil {
		placeholder = PlaceholderQuestion
	}
	var b strings.Builder
	for _, p := range t.parts {
		if p.name == "" {
			b.WriteString(p.lit)
			continue
		}
		names = append(names, p.name)
		b.WriteString(placeholder(len(names)))
	}
	return b.String(), names
}

// Args returns the values of the template's variables from vars, in the
// order of the placeholders SQL makes (nil for a missing name).
func (t *Template) Args(vars Vars) []any {
	var args []any
	for _, p := range t.parts {
		if p.name != "" {
			args = append(args, vars[p.name])
		}
	}
	return args
}

// Command is a parsed command (Redis style: a name and arguments) whose
// arguments may contain ${name} variables.
type Command struct {
	text string
	args [][]part
}

// ParseCommand splits text into arguments at spaces, tabs and line breaks
// and parses each argument's variables, which must be among allowed (all
// names VarNames knows when allowed is empty). Double quotes group literal
// text with spaces into one argument ("a b", with \" and \\ inside quotes);
// "" is an empty argument; variables inside quotes are still variables,
// and the offsets in errors count from the start of the argument. An
// empty command, an unterminated quote, an unknown or malformed ${name}
// and an unterminated ${ are errors matching persist.ErrInvalid.
func ParseCommand(text string, allowed ...string) (*Command, error) {
	allowed = allowedOrAll(allowed)
	var words []string
	var cur strings.Builder
	inWord, inQuote := false, false
	quoteAt := 0
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(text) && (text[i+1] == '"' || text[i+1] == '\\'):
			cur.WriteByte(text[i+1])
			i++
		case inQuote && c == '"':
			inQuote = false
		case inQuote:
			cur.WriteByte(c)
		case c == '"':
			inQuote, inWord, quoteAt = true, true, i
		case c == ' ' || c == '\t' || c == '\r' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inQuote {
		return nil, persist.Errorf(persist.ErrInvalid, "action: command %q: unterminated quote at offset %d", text, quoteAt)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, persist.Errorf(persist.ErrInvalid, "action: empty command %q", text)
	}
	cmd := &Command{text: text, args: make([][]part, len(words))}
	for i, w := range words {
		parts, err := parseParts(w, allowed, fmt.Sprintf("command %q argument %d %q", text, i, w))
		if err != nil {
			return nil, err
		}
		cmd.args[i] = parts
	}
	return cmd, nil
}

// String returns the text the command was parsed from.
func (c *Command) String() string { return c.text }

// Len returns the number of arguments, the command name included.
func (c *Command) Len() int { return len(c.args) }

// Names returns the command's variables in order; a variable used twice
// is listed twice.
func (c *Command) Names() []string {
	var names []string
	for _, a := range c.args {
		for _, p := range a {
			if p.name != "" {
				names = append(names, p.name)
			}
		}
	}
	return names
}

// Args returns the command's arguments with each variable replaced by its
// value from vars formatted by FormatArg. Each value stays inside the
// argument it was written in, whatever it contains (spaces, quotes, CR
// LF), so it can never become another argument or command.
func (c *Command) Args(vars Vars) []string {
	out := make([]string, len(c.args))
	var b strings.Builder
	for i, a := range c.args {
		if len(a) == 1 {
			if a[0].name == "" {
				out[i] = a[0].lit
			} else {
				out[i] = FormatArg(vars[a[0].name])
			}
			continue
		}
		b.Reset()
		for _, p := range a {
			if p.name == "" {
				b.WriteString(p.lit)
			} else {
				b.WriteString(FormatArg(vars[p.name]))
			}
		}
		out[i] = b.String()
	}
	return out
}

// FormatArg formats a variable's value as a command argument: strings and
// []byte as they are (bytes round-trip exactly), numbers in decimal, bools
// as "true" or "false", a time.Time as Unix seconds (as the reference
// backends store ts), nil as "", and anything else with fmt.Sprint.
func FormatArg(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case int32:
		return strconv.FormatInt(int64(x), 10)
	case uint8:
		return strconv.FormatUint(uint64(x), 10)
	case uint64:
		return strconv.FormatUint(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case time.Time:
		return strconv.FormatInt(x.Unix(), 10)
	}
	return fmt.Sprint(v)
}
