package persist

import (
	"fmt"
	"log/slog"
	"time"
)

// WriteMode is how a Pipeline gets writes to its store.
type WriteMode uint8

const (
	// Durable writes return once the store has them. Concurrent Publish
	// calls are group-committed: one store call carries everything queued
	// while the previous call ran, and releases every waiting caller.
	Durable WriteMode = iota
	// Async writes return once they are in the outbox; a worker writes
	// them to the store in order, in batches, retrying while it is down.
	Async
)

// String returns "durable" or "async".
func (m WriteMode) String() string {
	switch m {
	case Durable:
		return "durable"
	case Async:
		return "async"
	}
	return fmt.Sprintf("writemode(%d)", uint8(m))
}

// ParseWriteMode parses "durable" or "async".
func ParseWriteMode(s string) (WriteMode, error) {
	switch s {
	case "durable", "sync":
		return Durable, nil
	case "async":
		return Async, nil
	}
	return 0, Errorf(ErrInvalid, "persist: unknown write mode %q (want durable or async)", s)
}

// Overflow is what an async Pipeline does when its outbox is full.
type Overflow uint8

const (
	// Block makes writers wait (until their context ends) for room.
	Block Overflow = iota
	// DropOldest drops the oldest records not being written, counted in
	// PipelineStats.Dropped and logged.
	DropOldest
)

// String returns "block" or "drop-oldest".
func (o Overflow) String() string {
	switch o {
	case Block:
		return "block"
	case DropOldest:
		return "drop-oldest"
	}
	return fmt.Sprintf("overflow(%d)", uint8(o))
}

// ParseOverflow parses "block" or "drop-oldest".
func ParseOverflow(s string) (Overflow, error) {
	switch s {
	case "block":
		return Block, nil
	case "drop-oldest", "drop_oldest", "drop":
		return DropOldest, nil
	}
	return 0, Errorf(ErrInvalid, "persist: unknown overflow policy %q (want block or drop-oldest)", s)
}

// Defaults of PipelineOptions.
const (
	DefaultMaxBatch      = 1000
	DefaultMaxBatchBytes = 8 << 20
	DefaultWriteTimeout  = 5 * time.Second
	DefaultMinBackoff    = 50 * time.Millisecond
	DefaultMaxBackoff    = 5 * time.Second
	DefaultOutboxBytes   = 256 << 20
	DefaultInterval      = 5 * time.Millisecond
)

// PipelineOptions configure a Pipeline; the zero value gives a durable
// pipeline with the defaults.
type PipelineOptions struct {
	// Name names the store in logs and metrics; "" means its Go type.
	Name string
	// Mode is Durable (the default) or Async.
	Mode WriteMode
	// MaxBatch is the most items (messages, acks) of one store call;
	// 0 means DefaultMaxBatch.
	MaxBatch int
	// MaxBatchBytes bounds the encoded size of an async batch; 0 means
	// DefaultMaxBatchBytes.
	MaxBatchBytes int
	// Interval is how long the async worker lets a batch that is not full
	// fill up before writing it; 0 means DefaultInterval, and a negative
	// Interval writes at once what is queued (records queued while a write
	// runs make the next batch anyway). A FetchOffline, which waits for
	// what is queued before it to be written, and Close cut the wait
	// short. Bigger batches cost the store and the broker less per
	// message: under a steady stream of ~5,000 msgs/s to Redis, 5 ms made
	// batches of ~140 items instead of ~25 and took a third off Redis's
	// CPU (see BENCHMARKS.md).
	Interval time.Duration
	// Timeout bounds each store call; 0 means DefaultWriteTimeout. A
	// durable Publish retries retryable errors within it.
	Timeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between retries (doubled
	// each time, with jitter); 0 means the defaults.
	MinBackoff, MaxBackoff time.Duration
	// Outbox is the directory of the async outbox (a write-ahead log); ""
	// keeps the queue in memory, where a restart loses it.
	Outbox string
	// OutboxBytes bounds the records waiting in the outbox; 0 means
	// DefaultOutboxBytes.
	OutboxBytes int64
	// Overflow is what happens when the outbox is full.
	Overflow Overflow
	// Drain bounds how long Close keeps writing what is queued; 0 means
	// Timeout. What is left stays in an on-disk outbox for the next start.
	Drain time.Duration
	// DeadLetter, when set, gets the messages (published and retained) the
	// store refused with a permanent error.
	DeadLetter Store
	// Health, when positive, pings the store (if it is a Pinger) that often
	// so that an idle pipeline also notices, and logs, a store going down
	// and coming back.
	Health time.Duration
	// Logger receives store failures and outages; nil means slog.Default().
	Logger *slog.Logger
}

// PipelineStats are a Pipeline's counters since NewPipeline, in items
// (messages, acks, retained messages).
type PipelineStats struct {
	// Name is PipelineOptions.Name.
	Name string
	// Mode is the write mode.
	Mode WriteMode
	// Written counts items the store took.
	Written uint64
	// Failed counts items the store refused with a permanent error.
	Failed uint64
	// Retried counts items of store calls retried after a retryable error.
	Retried uint64
	// Dropped counts items dropped from a full outbox (DropOldest).
	Dropped uint64
	// Queued is how many records wait in the outbox.
	Queued int
	// OutboxBytes is their size.
	OutboxBytes int64
	// Up is false while the store is failing with retryable errors.
	Up bool
	// Batch is the number of items per store call.
	Batch Histogram
	// Latency is the duration of store calls, in seconds.
	Latency Histogram
}
