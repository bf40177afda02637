package persist

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"

	"github.com/tidwall/wal"
)

// outbox is an async Pipeline's queue of encoded records, indexed from 1
// in the order they were added. With a directory it is a write-ahead log
// (github.com/tidwall/wal): every record is in the file before add
// returns, so it survives the process being killed, and what was not yet
// written to the store is read back at the next start. Without one it is
// kept in memory only.
//
// Records leave from the front: done marks the oldest ones written, drop
// the oldest not being written. The front is recorded in a small marker
// file after every change and the log file is cut at it now and then, so a
// restart replays at most the records written since the last cut (stores
// take a message ID twice as once, and acks and retained messages replayed
// in order end where they were).
type outbox struct {
	mu      sync.Mutex
	changed chan struct{} // closed (and replaced) when records are added or leave, if waited for
	waited  bool          // changed was handed out by wait
	log     *wal.Log      // nil: in memory
	mem     [][]byte      // in-memory records: mem[i] has index first+i
	sizes   []int         // size of each pending record: sizes[i] has index first+i
	first   uint64        // oldest pending record
	next    uint64        // index of the next record added
	bytes   int64         // sum of sizes
	cut     uint64        // the log's first index (records before it are gone from the file)
	mark    *os.File      // holds first, so a restart skips what was written
	closed  bool
	walOpts wal.Options
	batch   wal.Batch // add's, kept for its buffers; o.mu
}

// outboxSegment is the size of one log file. The log is cut (its front
// file rewritten without the written records) when it is empty, or when
// cutEvery records were written since the last cut.
const (
	outboxSegment = 4 << 20
	cutEvery      = 16384
)

const markName = "mqttpersist.front"

func openOutbox(dir string) (*outbox, error) {
	o := &outbox{changed: make(chan struct{}), first: 1, next: 1, cut: 1}
	if dir == "" {
		return o, nil
	}
	o.walOpts = wal.Options{NoSync: true, SegmentSize: outboxSegment, AllowEmpty: true, NoCopy: true}
	l, err := wal.Open(dir, &o.walOpts)
	if errors.Is(err, wal.ErrCorrupt) {
		// A write cut short by a crash leaves a torn last record: cut it
		// off (it was never acknowledged) and open again.
		if rerr := repairTail(dir); rerr != nil {
			return nil, fmt.Errorf("outbox %s: %w (repair: %v)", dir, err, rerr)
		}
		l, err = wal.Open(dir, &o.walOpts)
	}
	if err != nil {
		return nil, fmt.Errorf("outbox %s: %w", dir, err)
	}
	o.log = l
	first, err1 := l.FirstIndex()
	last, err2 := l.LastIndex()
	if err := errors.Join(err1, err2); err != nil {
		l.Close()
		return nil, fmt.Errorf("outbox %s: %w", dir, err)
	}
	o.cut, o.first, o.next = first, first, last+1
	o.mark, err = os.OpenFile(filepath.Join(dir, markName), os.O_RDWR|os.O_CREATE, 0o640)
	if err == nil {
		if err = lockFile(o.mark); err != nil {
			o.mark.Close()
			err = fmt.Errorf("in use by another process (%w)", err)
		}
	}
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("outbox %s: %w", dir, err)
	}
	var b [8]byte
	if n, _ := o.mark.ReadAt(b[:], 0); n == 8 {
		if f := binary.BigEndian.Uint64(b[:]); f > o.first && f <= o.next {
			o.first = f
		}
	}
	for i := o.first; i < o.next; i++ {
		data, err := l.Read(i)
		if err != nil {
			o.close()
			return nil, fmt.Errorf("outbox %s: record %d: %w", dir, i, err)
		}
		o.sizes = append(o.sizes, len(data))
		o.bytes += int64(len(data))
	}
	return o, nil
}

// repairTail truncates the last segment file of the log in dir after its
// last whole record.
func repairTail(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		if n := e.Name(); len(n) == 20 && !e.IsDir() {
			if _, err := strconv.ParseUint(n, 10, 64); err == nil {
				names = append(names, n)
			}
		}
	}
	if len(names) == 0 {
		return errors.New("no segment file")
	}
	sort.Strings(names)
	path := filepath.Join(dir, names[len(names)-1])
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	pos := 0
	for pos < len(data) {
		size, n := binary.Uvarint(data[pos:])
		if n <= 0 || uint64(len(data)-pos-n) < size {
			break
		}
		pos += n + int(size)
	}
	return os.Truncate(path, int64(pos))
}

// wait returns a channel closed when records are next added or leave;
// o.mu is held.
func (o *outbox) wait() <-chan struct{} {
	o.waited = true
	return o.changed
}

// signal wakes whoever waits (see wait); o.mu is held.
func (o *outbox) signal() {
	if o.waited {
		close(o.changed)
		o.changed = make(chan struct{})
		o.waited = false
	}
}

// add appends records; o.mu is held.
func (o *outbox) add(recs [][]byte) error {
	if o.closed {
		return ErrClosed
	}
	if o.log != nil {
		b := &o.batch
		b.Clear()
		for i, r := range recs {
			b.Write(o.next+uint64(i), r)
		}
		if err := o.log.WriteBatch(b); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
	} else {
		o.mem = append(o.mem, recs...)
	}
	for _, r := range recs {
		o.sizes = append(o.sizes, len(r))
		o.bytes += int64(len(r))
	}
	o.next += uint64(len(recs))
	o.signal()
	return nil
}

// read returns the record at index i (first <= i < next); o.mu is held.
func (o *outbox) read(i uint64) ([]byte, error) {
	if o.log == nil {
		return o.mem[i-o.first], nil
	}
	return o.log.Read(i)
}

// remove takes n records off the front; o.mu is held.
func (o *outbox) remove(n int) {
	for _, s := range o.sizes[:n] {
		o.bytes -= int64(s)
	}
	o.sizes = o.sizes[n:]
	if o.log == nil {
		clear(o.mem[:n])
		o.mem = o.mem[n:]
	}
	o.first += uint64(n)
	if o.log != nil {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], o.first)
		o.mark.WriteAt(b[:], 0) // best effort: a restart then replays a little more
		if o.first == o.next || o.first-o.cut >= cutEvery {
			if err := o.log.TruncateFront(o.first); err == nil {
				o.cut = o.first
			}
		}
	}
	o.signal()
}

// sync flushes the log file to disk.
func (o *outbox) sync() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.log != nil && !o.closed {
		o.log.Sync()
		o.mark.Sync()
	}
}

func (o *outbox) close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	o.signal()
	if o.log == nil {
		return nil
	}
	err := o.log.Sync()
	err = errors.Join(err, o.mark.Sync(), o.mark.Close(), o.log.Close())
	return err
}
