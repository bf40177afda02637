package sqlstore

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/mqttpersist/mqttpersist/persist"
	"github.com/mqttpersist/mqttpersist/topic"
)

// checkText says what is wrong with a string stored in a text column: it
// must be UTF-8 without U+0000 (as MQTT strings are [MQTT-1.5.4-1,2]; and
// PostgreSQL text cannot hold U+0000) and at most max bytes.
func checkText(what, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%s is %d bytes, more than %d", what, len(v), max)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s %q is not valid UTF-8", what, v)
	}
	if strings.IndexByte(v, 0) >= 0 {
		return fmt.Errorf("%s %q contains U+0000", what, v)
	}
	return nil
}

func checkClientID(id string) error {
	if id == "" {
		return fmt.Errorf("client ID is empty")
	}
	return checkText("client ID", id, MaxClientIDLen)
}

func checkTopicName(name string) error {
	if len(name) > MaxTopicLen {
		return fmt.Errorf("topic name is %d bytes, more than this store's limit of %d", len(name), MaxTopicLen)
	}
	return topic.ValidateName(name)
}

func checkFilter(filter string) error {
	if len(filter) > MaxTopicLen {
		return fmt.Errorf("topic filter is %d bytes, more than this store's limit of %d", len(filter), MaxTopicLen)
	}
	return topic.ValidateFilter(filter)
}

func checkMsgID(id string) error {
	if id == "" {
		return fmt.Errorf("message ID is empty")
	}
	return checkText("message ID", id, MaxIDLen)
}

// checkMessage says what is wrong with a message to store, or nil.
func checkMessage(m *persist.Message, needID bool) error {
	if m == nil {
		return fmt.Errorf("message is nil")
	}
	if err := checkTopicName(m.Topic); err != nil {
		return err
	}
	if needID || m.ID != "" {
		if err := checkMsgID(m.ID); err != nil {
			return err
		}
	}
	if m.QoS > 2 {
		return fmt.Errorf("QoS is %d", m.QoS)
	}
	if m.Mode != persist.Fanout && m.Mode != persist.Queue {
		return fmt.Errorf("mode is %v", m.Mode)
	}
	for _, f := range []struct{ what, v string }{
		{"From", m.From}, {"Username", m.Username}, {"PeerHost", m.PeerHost}, {"Node", m.Node},
	} {
		if err := checkText(f.what, f.v, MaxStringLen); err != nil {
			return err
		}
	}
	// Properties are kept as JSON, which cannot carry invalid UTF-8.
	p := &m.Props
	if p.PayloadFormat != nil && *p.PayloadFormat > 1 {
		return fmt.Errorf("payload format indicator is %d", *p.PayloadFormat)
	}
	if !utf8.ValidString(p.ContentType) {
		return fmt.Errorf("content type is not valid UTF-8")
	}
	if !utf8.ValidString(p.ResponseTopic) {
		return fmt.Errorf("response topic is not valid UTF-8")
	}
	for i, u := range p.User {
		if !utf8.ValidString(u.Key) || !utf8.ValidString(u.Value) {
			return fmt.Errorf("user property %d is not valid UTF-8", i)
		}
	}
	return nil
}

// checkSub says what is wrong with a subscription, or nil.
func checkSub(sub *persist.Subscription) error {
	if err := checkFilter(sub.Filter); err != nil {
		return err
	}
	switch {
	case sub.QoS > 2:
		return fmt.Errorf("QoS is %d", sub.QoS)
	case sub.RetainHandling > 2:
		return fmt.Errorf("retain handling is %d", sub.RetainHandling)
	case sub.Identifier < 0 || sub.Identifier > 268435455:
		return fmt.Errorf("subscription identifier is %d (want 0 to 268435455)", sub.Identifier)
	}
	return nil
}
