package redisstore

import (
	"encoding/binary"
	"math"
	"strconv"
)

// packer writes MessagePack (https://msgpack.org), the format Redis's Lua
// reads with cmsgpack.unpack: publishScript takes a whole batch as one
// packed argument instead of ~30 arguments per message, so that go-redis
// boxes, writes and Redis parses one bulk string, not thousands. Only what
// the script reads is written: arrays, and strings (payloads too: Lua
// strings are bytes). Hand-written, since those two kinds are a few lines
// and a library would reflect over values built for it.
type packer struct {
	b []byte
}

// array starts an array of n elements.
func (p *packer) array(n int) {
	switch {
	case n < 16:
		p.b = append(p.b, 0x90|byte(n))
	case n <= math.MaxUint16:
		p.b = binary.BigEndian.AppendUint16(append(p.b, 0xdc), uint16(n))
	default:
		p.b = binary.BigEndian.AppendUint32(append(p.b, 0xdd), uint32(n))
	}
}

// openArray starts an array whose length is set later by closeArray.
func (p *packer) openArray() int {
	at := len(p.b)
	p.b = append(p.b, 0xdd, 0, 0, 0, 0)
	return at
}

// closeArray sets the length of the array openArray started at at.
func (p *packer) closeArray(at, n int) {
	binary.BigEndian.PutUint32(p.b[at+1:], uint32(n))
}

// strHeader starts a string of n bytes.
func (p *packer) strHeader(n int) {
	switch {
	case n < 32:
		p.b = append(p.b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		p.b = append(p.b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		p.b = binary.BigEndian.AppendUint16(append(p.b, 0xda), uint16(n))
	default:
		p.b = binary.BigEndian.AppendUint32(append(p.b, 0xdb), uint32(n))
	}
}

func (p *packer) str(s string) {
	p.strHeader(len(s))
	p.b = append(p.b, s...)
}

func (p *packer) bytes(v []byte) {
	p.strHeader(len(v))
	p.b = append(p.b, v...)
}

// int writes v as a decimal string (what Redis stores and Lua passes on).
func (p *packer) int(v int64) {
	var d [20]byte
	p.bytes(strconv.AppendInt(d[:0], v, 10))
}

// score writes a score of an index or registry: milliseconds, or +inf.
func (p *packer) score(v float64) {
	if math.IsInf(v, 1) {
		p.str("+inf")
		return
	}
	p.int(int64(v))
}

// packFields packs a message's fields as name and value strings; n counts
// them.
type packFields struct {
	*packer
	n int
}

func (f *packFields) field(name, value string) { f.str(name); f.str(value); f.n += 2 }
func (f *packFields) bytesField(name string, value []byte) {
	f.str(name)
	f.bytes(value)
	f.n += 2
}
func (f *packFields) intField(name string, value int64) { f.str(name); f.int(value); f.n += 2 }
