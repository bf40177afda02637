package persist

import (
	"strconv"
	"strings"
)

// Event is a set of broker events a Rule handles, one bit per Store verb.
// Names are the hooks of the reference backends ("client.connected",
// "message.publish", …; see Schema names in the package doc).
type Event uint16

// The events. Each one selects a Store verb.
const (
	// OnConnected selects Connected: client connect and disconnect
	// (client.connected, client.disconnected).
	OnConnected Event = 1 << iota
	// OnSubscribed selects Subscribed: subscribe and unsubscribe
	// (session.subscribed, session.unsubscribed).
	OnSubscribed
	// OnPublish selects Publish: storing published messages (message.publish).
	OnPublish
	// OnAcked selects Acked (message.acked).
	OnAcked
	// OnRetain selects Retain: set, replace and delete retained messages
	// (on_message_retain and on_retain_delete of the reference backends).
	OnRetain
	// OnFetch selects FetchOffline (on_message_fetch of the reference
	// backends).
	OnFetch
	// OnDelivered is reserved for deliveries (message.delivered); no Store
	// verb handles it yet and AllEvents leaves it out.
	OnDelivered
)

// AllEvents is every event a Store verb handles: all events but the
// reserved OnDelivered.
const AllEvents = OnConnected | OnSubscribed | OnPublish | OnAcked | OnRetain | OnFetch

const knownEvents = AllEvents | OnDelivered

var eventNames = [...]struct {
	e    Event
	name string
}{
	{OnConnected, "client.connected"},
	{OnSubscribed, "session.subscribed"},
	{OnPublish, "message.publish"},
	{OnAcked, "message.acked"},
	{OnRetain, "message.retain"},
	{OnFetch, "message.fetch"},
	{OnDelivered, "message.delivered"},
}

// eventAliases are the other names ParseEvent accepts.
var eventAliases = map[string]Event{
	"client.disconnected":  OnConnected,
	"session.unsubscribed": OnSubscribed,
	"connected":            OnConnected,
	"subscribed":           OnSubscribed,
	"publish":              OnPublish,
	"acked":                OnAcked,
	"retain":               OnRetain,
	"fetch":                OnFetch,
	"delivered":            OnDelivered,
	"all":                  AllEvents,
	"*":                    AllEvents,
}

// Has reports whether e contains every event of x.
func (e Event) Has(x Event) bool { return e&x == x }

// String returns the hook names of the events in e joined by "|", such as
// "client.connected|message.publish", or "none" for the empty set.
func (e Event) String() string {
	if e == 0 {
		return "none"
	}
	var b strings.Builder
	for _, n := range eventNames {
		if e&n.e != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(n.name)
		}
	}
	if rest := e &^ knownEvents; rest != 0 {
		if b.Len() > 0 {
			b.WriteByte('|')
		}
		b.WriteString("event(0x" + strconv.FormatUint(uint64(rest), 16) + ")")
	}
	return b.String()
}

// ParseEvent parses one event name or several joined by "|" or ",": the
// hook names ("client.connected", "client.disconnected",
// "session.subscribed", "session.unsubscribed", "message.publish",
// "message.acked", "message.delivered"), "message.retain" and
// "message.fetch" for the functions on_message_retain and on_message_fetch,
// the short forms "connected", "subscribed", "publish", "acked",
// "retain", "fetch", "delivered", and "all" (or "*") for AllEvents.
// It is the inverse of Event.String.
func ParseEvent(s string) (Event, error) {
	var e Event
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == '|' || r == ',' }) {
		name := strings.TrimSpace(f)
		x, ok := lookupEvent(name)
		if !ok {
			return 0, Errorf(ErrInvalid, "persist: unknown event %q (want one of %s, or all)", name, eventList())
		}
		e |= x
	}
	if e == 0 {
		return 0, Errorf(ErrInvalid, "persist: no event in %q (want one of %s, or all)", s, eventList())
	}
	return e, nil
}

func lookupEvent(name string) (Event, bool) {
	for _, n := range eventNames {
		if n.name == name {
			return n.e, true
		}
	}
	e, ok := eventAliases[name]
	return e, ok
}

func eventList() string {
	names := make([]string, 0, len(eventNames)+2)
	for _, n := range eventNames {
		names = append(names, n.name)
	}
	names = append(names, "client.disconnected", "session.unsubscribed")
	return strings.Join(names, ", ")
}
