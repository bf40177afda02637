package sqlstore

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/mqttpersist/mqttpersist/persist"
)

// scanMessage reads one row of msgCols.
func scanMessage(rows *sql.Rows) (*persist.Message, error) {
	var (
		id, tp, sender, node, user, peer, props sql.NullString
		qos, ret, mode                          sql.NullInt64
		payload                                 []byte
		arrived, expiry                         any
	)
	if err := rows.Scan(&id, &tp, &sender, &node, &qos, &ret, &payload, &arrived, &expiry, &mode, &user, &peer, &props); err != nil {
		return nil, err
	}
	m := &persist.Message{
		ID: id.String, Topic: tp.String, From: sender.String, Node: node.String,
		QoS: byte(qos.Int64), Retain: ret.Int64 != 0, Payload: payload,
		Mode: persist.Mode(mode.Int64), Username: user.String, PeerHost: peer.String,
	}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	var err error
	if m.Time, err = toTime(arrived); err != nil {
		return nil, fmt.Errorf("message %s: arrived: %w", m.ID, err)
	}
	if m.Expiry, err = toTime(expiry); err != nil {
		return nil, fmt.Errorf("message %s: expiry: %w", m.ID, err)
	}
	if props.Valid && props.String != "" {
		if err := json.Unmarshal([]byte(props.String), &m.Props); err != nil {
			return nil, fmt.Errorf("message %s: props: %w", m.ID, err)
		}
	}
	return m, nil
}

// scanRetained reads one row of retainCols.
func scanRetained(rows *sql.Rows) (*persist.Message, error) {
	var (
		tp, id, sender, node, props, user, peer sql.NullString
		qos                                     sql.NullInt64
		payload                                 []byte
		arrived, expiry                         any
	)
	if err := rows.Scan(&tp, &id, &sender, &node, &qos, &payload, &arrived, &expiry, &props, &user, &peer); err != nil {
		return nil, err
	}
	m := &persist.Message{Topic: tp.String, ID: id.String, From: sender.String, Node: node.String, QoS: byte(qos.Int64),
		Payload: payload, Retain: true, Username: user.String, PeerHost: peer.String}
	if m.Payload == nil {
		m.Payload = []byte{}
	}
	var err error
	if m.Time, err = toTime(arrived); err == nil {
		m.Expiry, err = toTime(expiry)
	}
	if err == nil && props.Valid && props.String != "" {
		err = json.Unmarshal([]byte(props.String), &m.Props)
	}
	if err != nil {
		return nil, fmt.Errorf("retained %q: %w", m.Topic, err)
	}
	return m, nil
}

// timeLayouts are the text forms of stored times (UTC wall clock).
var timeLayouts = []string{
	"2006-01-02 15:04:05.999999999",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02 15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02 15:04:05.999999999-07:00",
}

// toTime turns a scanned time column into an instant. Columns hold the UTC
// wall clock, whatever location a driver attaches to it.
func toTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case nil:
		return time.Time{}, nil
	case time.Time:
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC), nil
	case []byte:
		return parseTime(string(t))
	case string:
		return parseTime(t)
	}
	return time.Time{}, fmt.Errorf("unexpected time value %T", v)
}

func parseTime(s string) (time.Time, error) {
	if s == "" || strings.HasPrefix(s, "0000-00-00") {
		return time.Time{}, nil
	}
	for _, l := range timeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("unexpected time %q", s)
}
