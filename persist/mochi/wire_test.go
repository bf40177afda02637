package mochi_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// wireClient is an MQTT client made of mochi's packets package: it writes
// the packets a test scripts and records every packet the broker sends,
// decoded field by field, so the test sees what is on the wire (paho would
// resolve topic aliases and hide flags).
type wireClient struct {
	t    testing.TB
	name string
	o    wireOpts
	nc   net.Conn
	w    sync.Mutex // serializes writes

	mu      sync.Mutex
	got     []recv
	aliases map[uint16]string // this connection's topic aliases, from the broker
	prev    map[uint16]string // the previous connection's
	acks    map[uint16]chan packets.Packet
	held    []packets.Packet // PUBLISHes waiting for ack (o.Manual)
	pid     uint16
	more    chan struct{}
	done    chan struct{}
	err     error
}

// wireOpts are a wireClient's CONNECT.
type wireOpts struct {
	V3        bool   // MQTT 3.1.1 instead of 5
	Clean     bool   // clean start
	Expiry    uint32 // session expiry interval
	AliasMax  uint16 // Topic Alias Maximum
	RecvMax   uint16 // Receive Maximum
	MaxPacket uint32 // Maximum Packet Size
	// Manual leaves acknowledging received messages to ack; otherwise
	// each is acknowledged as it arrives (PUBACK, or PUBREC and PUBCOMP).
	Manual bool
	// NoComp leaves the broker's PUBREL packets unanswered (no PUBCOMP).
	NoComp bool
}

// recv is a packet the broker sent.
type recv struct {
	pk packets.Packet
	// topic is a PUBLISH's topic with aliases resolved; stale is set when
	// only the previous connection's aliases knew it.
	topic string
	stale bool
	// inflight is, in Manual mode, how many received QoS 1 and 2
	// messages were unacknowledged when this one came (itself included).
	inflight int
	// ack marks the script's ack of acked messages (Manual mode), not a
	// packet.
	ack   bool
	acked int
}

func (o wireOpts) version() byte {
	if o.V3 {
		return 4
	}
	return 5
}

// dialWire connects name to addr; prev carries the topic aliases of the
// client's previous connection (to resolve a broker's stale ones).
func dialWire(t testing.TB, addr, name string, o wireOpts, prev map[uint16]string) (*wireClient, error) {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &wireClient{
		t: t, name: name, o: o, nc: nc,
		aliases: map[uint16]string{}, prev: prev,
		acks: map[uint16]chan packets.Packet{},
		more: make(chan struct{}, 1), done: make(chan struct{}),
	}
	pk := packets.Packet{
		FixedHeader:     packets.FixedHeader{Type: packets.Connect},
		ProtocolVersion: o.version(),
		Connect: packets.ConnectParams{
			ProtocolName:     []byte("MQTT"),
			Clean:            o.Clean,
			Keepalive:        60,
			ClientIdentifier: name,
		},
	}
	if !o.V3 {
		p := &pk.Properties
		if o.Expiry > 0 {
			p.SessionExpiryInterval, p.SessionExpiryIntervalFlag = o.Expiry, true
		}
		p.TopicAliasMaximum = o.AliasMax
		p.ReceiveMaximum = o.RecvMax
		p.MaximumPacketSize = o.MaxPacket
	}
	ack := make(chan packets.Packet, 1)
	c.acks[0] = ack // the CONNACK
	go c.read()
	if err := c.write(pk); err != nil {
		nc.Close()
		return nil, err
	}
	select {
	case ca := <-ack:
		if ca.ReasonCode != 0 {
			nc.Close()
			return nil, fmt.Errorf("connack reason %#x", ca.ReasonCode)
		}
	case <-c.done:
		return nil, fmt.Errorf("connection closed before the CONNACK: %v", c.err)
	case <-time.After(5 * time.Second):
		nc.Close()
		return nil, errors.New("no CONNACK")
	}
	t.Cleanup(func() { c.nc.Close() })
	return c, nil
}

func (c *wireClient) write(pk packets.Packet) error {
	pk.ProtocolVersion = c.o.version()
	pk.Mods.AllowResponseInfo = true
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("wire client: cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}
	c.w.Lock()
	defer c.w.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = c.nc.Write(buf.Bytes())
	return err
}

// read decodes what the broker sends until the connection ends.
func (c *wireClient) read() {
	defer close(c.done)
	br := bufio.NewReader(c.nc)
	for {
		pk, err := readPacket(br, c.o.version())
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			c.signal()
			return
		}
		c.handle(pk)
	}
}

func readPacket(br *bufio.Reader, v byte) (packets.Packet, error) {
	var pk packets.Packet
	b, err := br.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	n, _, err := packets.DecodeLength(br)
	if err != nil {
		return pk, err
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(br, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = v
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubrel:
		err = pk.PubrelDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d from the broker", pk.FixedHeader.Type)
	}
	return pk, err
}

func (c *wireClient) handle(pk packets.Packet) {
	r := recv{pk: pk}
	var reply *packets.Packet
	c.mu.Lock()
	switch pk.FixedHeader.Type {
	case packets.Pingresp:
		c.mu.Unlock()
		return
	case packets.Publish:
		r.topic = pk.TopicName
		if a := pk.Properties.TopicAlias; pk.Properties.TopicAliasFlag && a > 0 {
			if pk.TopicName != "" {
				c.aliases[a] = pk.TopicName
			} else if tn, ok := c.aliases[a]; ok {
				r.topic = tn
			} else {
				r.topic, r.stale = c.prev[a], true
			}
		}
		if pk.FixedHeader.Qos > 0 {
			if c.o.Manual {
				c.held = append(c.held, pk)
				r.inflight = len(c.held)
			} else {
				reply = ackOf(pk)
			}
		}
	case packets.Pubrel:
		if !c.o.NoComp {
			reply = &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubcomp}, PacketID: pk.PacketID}
		}
	case packets.Connack, packets.Suback, packets.Unsuback, packets.Puback, packets.Pubcomp:
		if ch, ok := c.acks[pk.PacketID]; ok && (pk.FixedHeader.Type != packets.Connack || pk.PacketID == 0) {
			delete(c.acks, pk.PacketID)
			ch <- pk
		}
	case packets.Pubrec:
		if ch, ok := c.acks[pk.PacketID]; ok {
			delete(c.acks, pk.PacketID)
			ch <- pk
		}
	}
	if reply != nil {
		// Before the packet counts as received: what the script does
		// once it saw the packet comes after the answer.
		_ = c.write(*reply)
	}
	c.got = append(c.got, r)
	c.mu.Unlock()
	c.signal()
}

// ackOf is the client's first answer to a QoS 1 or 2 PUBLISH.
func ackOf(pk packets.Packet) *packets.Packet {
	typ := byte(packets.Puback)
	if pk.FixedHeader.Qos == 2 {
		typ = packets.Pubrec
	}
	return &packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: pk.PacketID}
}

func (c *wireClient) signal() {
	select {
	case c.more <- struct{}{}:
	default:
	}
}

// ack acknowledges the messages held in Manual mode.
func (c *wireClient) ack() {
	c.mu.Lock()
	held := c.held
	c.held = nil
	c.got = append(c.got, recv{ack: true, acked: len(held)})
	c.mu.Unlock()
	for _, pk := range held {
		if err := c.write(*ackOf(pk)); err != nil {
			c.t.Errorf("%s: ack: %v", c.name, err)
		}
	}
}

// request sends pk (with a new packet ID unless it has one) and waits for
// the broker's answer of that ID.
func (c *wireClient) request(pk packets.Packet) (packets.Packet, error) {
	c.mu.Lock()
	if pk.PacketID == 0 {
		c.pid++
		pk.PacketID = c.pid
	}
	ch := make(chan packets.Packet, 1)
	c.acks[pk.PacketID] = ch
	c.mu.Unlock()
	if err := c.write(pk); err != nil {
		return pk, err
	}
	select {
	case a := <-ch:
		return a, nil
	case <-c.done:
		return pk, fmt.Errorf("connection closed: %v", c.err)
	case <-time.After(5 * time.Second):
		return pk, fmt.Errorf("no answer to packet %d", pk.PacketID)
	}
}

// subscribe subscribes with subscription identifier id (0: none).
func (c *wireClient) subscribe(id int, subs ...packets.Subscription) {
	c.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, Filters: subs}
	if id > 0 {
		pk.Properties.SubscriptionIdentifier = []int{id}
	}
	if _, err := c.request(pk); err != nil {
		c.t.Fatalf("%s: subscribe: %v", c.name, err)
	}
}

// publish publishes pk and, for QoS 1 and 2, waits for the flow to end.
func (c *wireClient) publish(pk packets.Packet) {
	c.t.Helper()
	pk.FixedHeader.Type = packets.Publish
	if pk.FixedHeader.Qos == 0 {
		if err := c.write(pk); err != nil {
			c.t.Fatalf("%s: publish: %v", c.name, err)
		}
		return
	}
	a, err := c.request(pk)
	if err == nil && a.FixedHeader.Type == packets.Pubrec {
		a, err = c.request(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pubrel, Qos: 1}, PacketID: a.PacketID})
	}
	if err != nil {
		c.t.Fatalf("%s: publish %s: %v", c.name, pk.TopicName, err)
	}
}

// count returns how many PUBLISH packets arrived.
func (c *wireClient) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.got {
		if !r.ack && r.pk.FixedHeader.Type == packets.Publish {
			n++
		}
	}
	return n
}

// await waits (up to 5 s) until n PUBLISH packets arrived on this
// connection; it returns false if they did not.
func (c *wireClient) await(n int) bool {
	deadline := time.After(5 * time.Second)
	for c.count() < n {
		select {
		case <-c.more:
		case <-deadline:
			return false
		}
	}
	return true
}

// disconnect sends DISCONNECT and waits for the broker to close.
func (c *wireClient) disconnect() {
	_ = c.write(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
		c.t.Errorf("%s: the broker did not close the connection after DISCONNECT", c.name)
	}
	c.nc.Close()
}

// drop closes the connection without DISCONNECT.
func (c *wireClient) drop() {
	c.nc.Close()
	<-c.done
}

// received returns what arrived so far and the connection's aliases.
func (c *wireClient) received() ([]recv, map[uint16]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := append([]recv(nil), c.got...)
	al := make(map[uint16]string, len(c.aliases))
	for k, v := range c.aliases {
		al[k] = v
	}
	return out, al
}
