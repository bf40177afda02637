package persist

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttpersist/mqttpersist/topic"
)

// EventSupporter is implemented by stores that handle only some events,
// such as a time-series writer that only stores publishes. A store that
// does not implement it is taken to handle AllEvents.
type EventSupporter interface {
	// Events returns the events the store handles.
	Events() Event
}

// Unsupported is embedded by stores that implement only some verbs: its
// six verbs return an error matching ErrUnsupported and its Events returns
// none, so the embedding store overrides the verbs it has and declares them
// with its own Events method (NewRouter rejects a store that handles no
// events).
type Unsupported struct{}

func unsupported(op string) error { return &Error{Op: op, Kind: ErrUnsupported} }

// Events returns no events; a store embedding Unsupported overrides it.
func (Unsupported) Events() Event { return 0 }

// Connected returns an error matching ErrUnsupported.
func (Unsupported) Connected(context.Context, *Client) error { return unsupported("Connected") }

// Subscribed returns an error matching ErrUnsupported.
func (Unsupported) Subscribed(context.Context, string, []Subscription, []string) error {
	return unsupported("Subscribed")
}

// Publish returns an error matching ErrUnsupported.
func (Unsupported) Publish(context.Context, ...*Message) error { return unsupported("Publish") }

// Acked returns an error matching ErrUnsupported.
func (Unsupported) Acked(context.Context, string, ...Ack) error { return unsupported("Acked") }

// Retain returns an error matching ErrUnsupported.
func (Unsupported) Retain(context.Context, *Message) error { return unsupported("Retain") }

// FetchOffline returns an error matching ErrUnsupported.
func (Unsupported) FetchOffline(context.Context, string, string, Fetch) ([]*Message, error) {
	return nil, unsupported("FetchOffline")
}

// Rule sends the events of the topics matching Filter to Store (the seeds'
// hook lines: backend.<db>.hook.<event>.<n> = {"topic": …, "action": …}).
type Rule struct {
	// Name names the rule in errors and Stats; an unnamed rule is called
	// "#<index>".
	Name string
	// Events are the events the rule handles; 0 means every event the
	// store handles (see EventSupporter).
	Events Event
	// Filter selects the topics of messages, acks and retained messages,
	// and the subscriptions and fetches whose filters overlap it; "" means
	// "#". As in MQTT, a filter starting with a wildcard does not match
	// topics starting with '$' [MQTT-4.7.2-1]; a shared filter is not
	// allowed.
	Filter string
	// Store is where the rule writes. The caller owns it: the Router never
	// closes it.
	Store Store
	// Mode is how published messages are kept (Message.Mode) and which
	// messages FetchOffline asks the store for.
	Mode Mode
	// QoS0 stores QoS 0 publishes too; by default only QoS 1 and 2 are
	// stored (the seeds' on_message_store).
	QoS0 bool
	// Expiry sets Message.Expiry to Time+Expiry on published messages that
	// have no expiry (the seeds' expired_after); 0 means no default.
	Expiry time.Duration
	// Offline holds the defaults of FetchOffline (the seeds' offline_opts):
	// Limit, Since and Lease. Its Mode is ignored: Mode is used.
	Offline Fetch
	// History makes new subscriptions start at the oldest stored message
	// (it sets Subscription.History).
	History bool
}

// RuleStats are a rule's counters since NewRouter, counted in items
// (messages, acks, subscriptions, clients) of the write verbs; reads
// (FetchOffline, lookups) are not counted.
type RuleStats struct {
	// Index is the rule's position in NewRouter's arguments.
	Index int
	// Name is the rule's name, or "#<index>".
	Name string
	// Matched counts the items routed to the rule.
	Matched uint64
	// Written counts the items its store accepted.
	Written uint64
	// Failed counts the items whose store call failed.
	Failed uint64
}

// RuleError is an error of a store, returned by the Router with the rules
// whose items the failed call carried. It unwraps to the store's error.
type RuleError struct {
	// Rules are the names of the rules ("#<index>" when unnamed).
	Rules []string
	// Op is the Router method, such as "Publish".
	Op string
	// Err is the store's error.
	Err error
}

// Error returns "persist: rule "name": Op: err".
func (e *RuleError) Error() string {
	q := make([]string, len(e.Rules))
	for i, n := range e.Rules {
		q[i] = strconv.Quote(n)
	}
	word := "rule "
	if len(q) > 1 {
		word = "rules "
	}
	return "persist: " + word + strings.Join(q, ", ") + ": " + e.Op + ": " + e.Err.Error()
}

// Unwrap returns the store's error.
func (e *RuleError) Unwrap() error { return e.Err }

// Router sends each event to the stores of the rules that match it. It
// implements Store, so routers compose, and the companions ClientLookup,
// SubscriptionLookup, RetainLookup, Pinger, Closer and EventSupporter. It is
// safe for concurrent use.
//
// A write verb makes at most one call per distinct store (stores are
// compared with ==), carrying everything for that store, and calls
// different stores concurrently; it returns when every call has returned,
// with their errors joined, each a *RuleError. A store that is slow delays
// only the Router call that waits for it, never another store's call.
//
// Rules are matched against topic names with a topic.Index; subscriptions
// and fetches, which carry filters, are matched by filter overlap against
// each rule.
type Router struct {
	rules  []*route
	index  *topic.Index[int]
	given  []Store     // distinct stores as the rules give them; route.store indexes it
	stores []*Pipeline // the pipeline each store is written through
	events Event       // union of the rules' events
	closed atomic.Bool
}

// route is one validated rule and its counters.
type route struct {
	Rule
	index  int
	name   string // Name, or "#<index>"
	events Event
	store  int

	matched, written, failed atomic.Uint64
}

// NewRouter returns a Router of rules, which are checked: each needs a
// store, a valid filter, a known mode, non-negative durations and limits,
// and events its store handles (see EventSupporter). Rules are ordered:
// when several rules with OnPublish send one message to the same store, the
// first of them decides its Mode and Expiry (a store keeps one copy of a
// message), so put specific rules first, as in
// {queue/# → Queue}, {# → Fanout}. Errors match ErrInvalid and name the
// rule by index and name.
func NewRouter(rules ...Rule) (*Router, error) {
	if len(rules) == 0 {
		return nil, Errorf(ErrInvalid, "persist: NewRouter: no rules")
	}
	r := &Router{index: topic.NewIndex[int]()}
	for i, rule := range rules {
		rt, err := r.newRoute(i, rule)
		if err != nil {
			return nil, err
		}
		if err := r.index.Add(rt.Filter, i); err != nil {
			return nil, Errorf(ErrInvalid, "persist: %s: %w", rt.label(), err)
		}
		r.rules = append(r.rules, rt)
		r.events |= rt.events
	}
	return r, nil
}

func (r *Router) newRoute(i int, rule Rule) (*route, error) {
	rt := &route{Rule: rule, index: i, name: rule.Name}
	if rt.name == "" {
		rt.name = "#" + strconv.Itoa(i)
	}
	bad := func(format string, args ...any) error {
		return Errorf(ErrInvalid, "persist: %s: "+format, append([]any{rt.label()}, args...)...)
	}
	if rule.Store == nil {
		return nil, bad("no store")
	}
	if rt.Filter == "" {
		rt.Filter = "#"
	}
	if err := topic.ValidateFilter(rt.Filter); err != nil {
		return nil, Errorf(ErrInvalid, "persist: %s: %w", rt.label(), err)
	}
	if _, _, shared := topic.Shared(rt.Filter); shared {
		return nil, bad("filter %q is a shared subscription; a rule filter selects topics", rt.Filter)
	}
	if rule.Mode != Fanout && rule.Mode != Queue {
		return nil, bad("unknown mode %v (want fanout or queue)", rule.Mode)
	}
	switch {
	case rule.Expiry < 0:
		return nil, bad("negative Expiry %v", rule.Expiry)
	case rule.Offline.Limit < 0:
		return nil, bad("negative Offline.Limit %d", rule.Offline.Limit)
	case rule.Offline.Since < 0:
		return nil, bad("negative Offline.Since %v", rule.Offline.Since)
	case rule.Offline.Lease < 0:
		return nil, bad("negative Offline.Lease %v", rule.Offline.Lease)
	}
	if unknown := rule.Events &^ knownEvents; unknown != 0 {
		return nil, bad("unknown events %v", unknown)
	}
	supported := AllEvents
	if es, ok := rule.Store.(EventSupporter); ok {
		supported = es.Events()
	}
	rt.events = rule.Events
	if rt.events == 0 {
		rt.events = supported
	}
	if rt.events == 0 {
		return nil, bad("store %T handles no events (a store embedding Unsupported declares its events with an Events method)", rule.Store)
	}
	if missing := rt.events &^ supported; missing != 0 {
		return nil, bad("store %T does not handle %v (it handles %v)", rule.Store, missing, supported)
	}
	rt.store = -1
	for j, s := range r.given {
		if sameStore(s, rule.Store) {
			rt.store = j
			break
		}
	}
	if rt.store < 0 {
		p, ok := rule.Store.(*Pipeline)
		if !ok {
			var err error
			if p, err = NewPipeline(rule.Store, &PipelineOptions{Name: r.freeName(reflect.TypeOf(rule.Store).String())}); err != nil {
				return nil, err
			}
		} else if r.pipeline(p.Name()) != nil {
			return nil, bad("two stores are named %q (PipelineOptions.Name)", p.Name())
		}
		rt.store = len(r.stores)
		r.given = append(r.given, rule.Store)
		r.stores = append(r.stores, p)
	}
	if p, ok := rule.Store.(*Pipeline); ok {
		rt.Store = p.Store() // lookups read the store itself
	}
	return rt, nil
}

// freeName returns name, or name#2, name#3, ... when a store has it.
func (r *Router) freeName(name string) string {
	for i, n := 2, name; ; i++ {
		if r.pipeline(n) == nil {
			return n
		}
		n = name + "#" + strconv.Itoa(i)
	}
}

func (r *Router) pipeline(name string) *Pipeline {
	for _, p := range r.stores {
		if p.Name() == name {
			return p
		}
	}
	return nil
}

// Pipelines returns the pipeline of each distinct store of the rules, in
// the order the rules first name them: the Pipelines given as rules'
// stores and the durable ones the Router made for the other stores.
func (r *Router) Pipelines() []*Pipeline {
	return append([]*Pipeline(nil), r.stores...)
}

// label names the rule in NewRouter errors: `rule 2 "name"`.
func (rt *route) label() string {
	if rt.Name == "" {
		return "rule " + strconv.Itoa(rt.index)
	}
	return "rule " + strconv.Itoa(rt.index) + " " + strconv.Quote(rt.Name)
}

// sameStore reports whether a and b are the same store, without panicking
// on stores whose dynamic type is not comparable.
func sameStore(a, b Store) (same bool) {
	ta := reflect.TypeOf(a)
	if ta != reflect.TypeOf(b) || !ta.Comparable() {
		return false
	}
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// Events returns the union of the events of the Router's rules.
func (r *Router) Events() Event { return r.events }

// Stats returns every rule's counters, in rule order.
func (r *Router) Stats() []RuleStats {
	out := make([]RuleStats, len(r.rules))
	for i, rt := range r.rules {
		out[i] = RuleStats{
			Index:   rt.index,
			Name:    rt.name,
			Matched: rt.matched.Load(),
			Written: rt.written.Load(),
			Failed:  rt.failed.Load(),
		}
	}
	return out
}

// Close marks the Router closed: afterwards every method returns an error
// matching ErrClosed. Calls already running finish. It does not close the
// stores, which the caller owns. Closing twice is not an error.
func (r *Router) Close() error {
	r.closed.Store(true)
	return nil
}

func (r *Router) errClosed(op string) error {
	return &Error{Store: "router", Op: op, Kind: ErrClosed}
}

// match appends to buf the indexes of the rules with an event of ev whose
// filter matches the topic name, in rule order.
func (r *Router) match(name string, ev Event, buf []int) []int {
	r.index.Each(name, func(_ string, i int) bool {
		if r.rules[i].events&ev != 0 {
			buf = append(buf, i)
		}
		return true
	})
	slices.Sort(buf)
	return buf
}

// job is one call to one store, carrying count items for each of rules.
type job struct {
	store  int
	rules  []int
	counts []uint64
	call   func() error
}

// add counts n items of rule i.
func (j *job) add(i int, n uint64) {
	for k, x := range j.rules {
		if x == i {
			j.counts[k] += n
			return
		}
	}
	j.rules = append(j.rules, i)
	j.counts = append(j.counts, n)
}

// run calls every job, concurrently when there are several, counts the
// results and joins the errors, each wrapped in a RuleError.
func (r *Router) run(op string, jobs []*job) error {
	errs := make([]error, len(jobs))
	if len(jobs) == 1 {
		errs[0] = jobs[0].call()
	} else {
		var wg sync.WaitGroup
		for i, j := range jobs {
			wg.Go(func() { errs[i] = j.call() })
		}
		wg.Wait()
	}
	for i, j := range jobs {
		for k, ri := range j.rules {
			if errs[i] != nil {
				r.rules[ri].failed.Add(j.counts[k])
			} else {
				r.rules[ri].written.Add(j.counts[k])
			}
		}
		if errs[i] != nil {
			errs[i] = r.ruleError(op, j.rules, errs[i])
		}
	}
	return errors.Join(errs...)
}

func (r *Router) ruleError(op string, rules []int, err error) error {
	names := make([]string, len(rules))
	for k, ri := range rules {
		names[k] = r.rules[ri].name
	}
	return &RuleError{Rules: names, Op: op, Err: err}
}

// prepare checks a Publish batch (no nil message, valid topic names) and
// fills in missing IDs and Times.
func prepare(msgs []*Message) error {
	for i, m := range msgs {
		if m == nil {
			return Errorf(ErrInvalid, "persist: Publish: message %d is nil", i)
		}
		if err := topic.ValidateName(m.Topic); err != nil {
			return Errorf(ErrInvalid, "persist: Publish: message %d: %w", i, err)
		}
	}
	now := time.Now()
	for _, m := range msgs {
		fill(m, now)
	}
	return nil
}

// fill gives m an ID and a Time when it has none.
func fill(m *Message, now time.Time) {
	if m.Time.IsZero() {
		m.Time = now
	}
	if m.ID == "" {
		m.ID = NewIDAt(m.Time)
	}
}

// Publish sends each message to the stores of the rules with OnPublish
// whose filter matches its topic, skipping QoS 0 messages for rules
// without QoS0. Each store gets one Publish call with its messages in the
// order given. A message with no ID gets one from NewIDAt, and a zero Time
// becomes now: Publish sets these on the caller's messages, so the caller
// knows the ID that acks will carry, and changes nothing else. Each store
// gets its own copy of a message with the rule's Mode and, when the
// message has no expiry, the rule's default Expiry. A message that reaches
// one store through several rules is sent once, as the first of those rules
// says. Nil messages and invalid topic names are errors matching
// ErrInvalid, and nothing is stored then.
func (r *Router) Publish(ctx context.Context, msgs ...*Message) error {
	if r.closed.Load() {
		return r.errClosed("Publish")
	}
	if err := prepare(msgs); err != nil {
		return err
	}
	if r.events&OnPublish == 0 {
		return nil
	}
	batches := batchByStore(r, msgs, OnPublish, func(m *Message) string { return m.Topic },
		func(rt *route, m *Message) (*Message, bool) {
			if m.QoS == 0 && !rt.QoS0 {
				return nil, false
			}
			c := *m
			c.Mode = rt.Mode
			c.rule = rt.name
			if c.Expiry.IsZero() && rt.Expiry > 0 {
				c.Expiry = c.Time.Add(rt.Expiry)
			}
			return &c, true
		})
	return runBatches(r, "Publish", batches, func(s Store, msgs []*Message) error { return s.Publish(ctx, msgs...) })
}

// storeBatch is the items of one call to one store.
type storeBatch[T any] struct {
	job
	items []T
	last  int // index in the input of the batch's last item
}

// batchByStore groups items by the stores of the rules with ev whose
// filter matches topicOf(item), keeping the input order. pick returns the
// item as a rule stores it, or false to skip that rule. An item that reaches
// one store through several rules is added once, as the first of them
// (rules are matched in order) picked it; every matching rule is counted.
func batchByStore[T any](r *Router, items []T, ev Event, topicOf func(T) string, pick func(*route, T) (T, bool)) []*storeBatch[T] {
	var batches []*storeBatch[T]
	byStore := make([]*storeBatch[T], len(r.stores))
	var buf [8]int
	for i, it := range items {
		for _, ri := range r.match(topicOf(it), ev, buf[:0]) {
			rt := r.rules[ri]
			v, ok := pick(rt, it)
			if !ok {
				continue
			}
			rt.matched.Add(1)
			b := byStore[rt.store]
			if b == nil {
				b = &storeBatch[T]{job: job{store: rt.store}, last: -1}
				byStore[rt.store] = b
				batches = append(batches, b)
			}
			b.add(ri, 1)
			if b.last != i {
				b.items = append(b.items, v)
				b.last = i
			}
		}
	}
	return batches
}

// runBatches makes one call per batch (concurrently across stores).
func runBatches[T any](r *Router, op string, batches []*storeBatch[T], call func(Store, []T) error) error {
	if len(batches) == 0 {
		return nil
	}
	jobs := make([]*job, len(batches))
	for i, b := range batches {
		store, items := r.stores[b.store], b.items
		b.call = func() error { return call(store, items) }
		jobs[i] = &b.job
	}
	return r.run(op, jobs)
}

// Retain sends m to the stores of the rules with OnRetain whose filter
// matches its topic, whatever its QoS, each store once with its own copy;
// rules' Expiry and Mode do not apply. Like Publish it sets a missing ID
// and Time on m.
func (r *Router) Retain(ctx context.Context, m *Message) error {
	if r.closed.Load() {
		return r.errClosed("Retain")
	}
	if m == nil {
		return Errorf(ErrInvalid, "persist: Retain: nil message")
	}
	if err := topic.ValidateName(m.Topic); err != nil {
		return Errorf(ErrInvalid, "persist: Retain: %w", err)
	}
	fill(m, time.Now())
	var buf [8]int
	var jobs []*job
	byStore := make([]*job, len(r.stores))
	for _, ri := range r.match(m.Topic, OnRetain, buf[:0]) {
		rt := r.rules[ri]
		rt.matched.Add(1)
		j := byStore[rt.store]
		if j == nil {
			store, c := r.stores[rt.store], *m
			c.rule = rt.name
			j = &job{store: rt.store, call: func() error { return store.Retain(ctx, &c) }}
			byStore[rt.store] = j
			jobs = append(jobs, j)
		}
		j.add(ri, 1)
	}
	if len(jobs) == 0 {
		return nil
	}
	return r.run("Retain", jobs)
}

// Fetchable reports whether FetchOffline can give back a message that
// Publish stores for the topic name at this QoS, and in which mode: the
// first rule with OnPublish that sends it to a store (as Publish decides)
// has a store that a rule with OnFetch, the same mode and a filter matching
// name reads. Broker adapters use it to know which messages the database
// delivers to offline subscribers. It returns false after Close.
func (r *Router) Fetchable(name string, qos byte) (Mode, bool) {
	if r.closed.Load() || r.events&OnPublish == 0 || r.events&OnFetch == 0 {
		return 0, false
	}
	var buf [8]int
	matched := r.match(name, OnPublish|OnFetch, buf[:0])
	for k, ri := range matched {
		rt := r.rules[ri]
		if rt.events&OnPublish == 0 || (qos == 0 && !rt.QoS0) {
			continue
		}
		first := true
		for _, pj := range matched[:k] {
			if p := r.rules[pj]; p.store == rt.store && p.events&OnPublish != 0 && (qos > 0 || p.QoS0) {
				first = false
				break
			}
		}
		if !first {
			continue
		}
		for _, fj := range matched {
			if f := r.rules[fj]; f.events&OnFetch != 0 && f.store == rt.store && f.Mode == rt.Mode {
				return rt.Mode, true
			}
		}
	}
	return 0, false
}

// Acked sends each ack to the stores of the rules with OnAcked whose
// filter matches its topic, one Acked call per store with its acks in the
// order given. An ack without an ID or with an invalid topic is an error
// matching ErrInvalid, and nothing is sent then.
func (r *Router) Acked(ctx context.Context, clientID string, acks ...Ack) error {
	if r.closed.Load() {
		return r.errClosed("Acked")
	}
	for i, a := range acks {
		if a.ID == "" {
			return Errorf(ErrInvalid, "persist: Acked: ack %d has no message ID", i)
		}
		if err := topic.ValidateName(a.Topic); err != nil {
			return Errorf(ErrInvalid, "persist: Acked: ack %d (message %s): %w", i, a.ID, err)
		}
	}
	batches := batchByStore(r, acks, OnAcked, func(a Ack) string { return a.Topic },
		func(_ *route, a Ack) (Ack, bool) { return a, true })
	return runBatches(r, "Acked", batches, func(s Store, acks []Ack) error { return s.Acked(ctx, clientID, acks...) })
}

// Connected sends c to the store of every rule with OnConnected, each
// store once with its own copy.
func (r *Router) Connected(ctx context.Context, c *Client) error {
	if r.closed.Load() {
		return r.errClosed("Connected")
	}
	if c == nil {
		return Errorf(ErrInvalid, "persist: Connected: nil client")
	}
	var jobs []*job
	byStore := make([]*job, len(r.stores))
	for ri, rt := range r.rules {
		if rt.events&OnConnected == 0 {
			continue
		}
		rt.matched.Add(1)
		j := byStore[rt.store]
		if j == nil {
			store, cc := r.stores[rt.store], *c
			j = &job{store: rt.store, call: func() error { return store.Connected(ctx, &cc) }}
			byStore[rt.store] = j
			jobs = append(jobs, j)
		}
		j.add(ri, 1)
	}
	if len(jobs) == 0 {
		return nil
	}
	return r.run("Connected", jobs)
}

// Subscribed sends each subscription and each removed filter to the stores
// of the rules with OnSubscribed whose filter overlaps it (a shared
// subscription by its inner filter), so a store only gets the
// subscriptions its rules can serve; each store gets one call. A rule with
// History sets Subscription.History on the subscriptions it sends (a
// subscription's own History is kept). Invalid filters are errors matching
// ErrInvalid, and nothing is sent then.
func (r *Router) Subscribed(ctx context.Context, clientID string, subs []Subscription, removed []string) error {
	if r.closed.Load() {
		return r.errClosed("Subscribed")
	}
	for i, s := range subs {
		if err := topic.ValidateFilter(s.Filter); err != nil {
			return Errorf(ErrInvalid, "persist: Subscribed: subscription %d: %w", i, err)
		}
	}
	for i, f := range removed {
		if err := topic.ValidateFilter(f); err != nil {
			return Errorf(ErrInvalid, "persist: Subscribed: removed filter %d: %w", i, err)
		}
	}
	type batch struct {
		job
		subs    []Subscription
		removed []string
		last    int
	}
	var batches []*batch
	byStore := make([]*batch, len(r.stores))
	get := func(rt *route) *batch {
		b := byStore[rt.store]
		if b == nil {
			b = &batch{job: job{store: rt.store}, last: -1}
			byStore[rt.store] = b
			batches = append(batches, b)
		}
		return b
	}
	for si, s := range subs {
		for ri, rt := range r.rules {
			if rt.events&OnSubscribed == 0 || !topic.Overlap(rt.Filter, s.Filter) {
				continue
			}
			rt.matched.Add(1)
			b := get(rt)
			b.add(ri, 1)
			if b.last != si {
				b.subs = append(b.subs, s)
				b.last = si
			}
			if rt.History {
				b.subs[len(b.subs)-1].History = true
			}
		}
	}
	for fi, f := range removed {
		for ri, rt := range r.rules {
			if rt.events&OnSubscribed == 0 || !topic.Overlap(rt.Filter, f) {
				continue
			}
			rt.matched.Add(1)
			b := get(rt)
			b.add(ri, 1)
			if b.last != len(subs)+fi {
				b.removed = append(b.removed, f)
				b.last = len(subs) + fi
			}
		}
	}
	if len(batches) == 0 {
		return nil
	}
	jobs := make([]*job, len(batches))
	for i, b := range batches {
		store, subs, removed := r.stores[b.store], b.subs, b.removed
		b.call = func() error { return store.Subscribed(ctx, clientID, subs, removed) }
		jobs[i] = &b.job
	}
	return r.run("Subscribed", jobs)
}

// fetchGroup is one FetchOffline call to one store, for the rules in
// filters.
type fetchGroup struct {
	store   int
	filter  string // the filter passed to the store
	opt     Fetch
	rules   []int
	filters []string // the rules' filters
	got     []*Message
	err     error
}

// FetchOffline returns the offline messages of clientID matching filter
// from the stores of the rules with OnFetch whose filter overlaps it, in
// ID order, without duplicate IDs, at most opt.Limit of them (0: no
// limit).
//
// Each store is asked with opt over the rule's Offline defaults (opt's
// non-zero Limit, Since and Lease win) and always in the rule's Mode
// (opt.Mode is ignored); only messages whose topic matches both filter and
// the rule's filter are kept. Rules with the same store, mode and options
// share one call.
//
// A queue fetch claims what it returns, so the Router never drops a
// claimed message: a queue rule's store is asked for the intersection of
// filter and the rule's filter, and, when opt.Limit is set, queue rules
// are asked one after another for what is left of the limit; fanout rules,
// whose fetches claim nothing, are asked afterwards (concurrently) for the
// rest, and only their messages are cut to opt.Limit. So with a limit,
// queue messages come first and the result is not always the lowest IDs of
// all rules. Without a limit every store is asked concurrently.
//
// When a store fails, FetchOffline returns the messages of the other
// stores along with the error (claimed queue messages are not lost).
func (r *Router) FetchOffline(ctx context.Context, clientID, filter string, opt Fetch) ([]*Message, error) {
	if r.closed.Load() {
		return nil, r.errClosed("FetchOffline")
	}
	if err := topic.ValidateFilter(filter); err != nil {
		return nil, Errorf(ErrInvalid, "persist: FetchOffline: %w", err)
	}
	switch {
	case opt.Limit < 0:
		return nil, Errorf(ErrInvalid, "persist: FetchOffline: negative Limit %d", opt.Limit)
	case opt.Since < 0:
		return nil, Errorf(ErrInvalid, "persist: FetchOffline: negative Since %v", opt.Since)
	case opt.Lease < 0:
		return nil, Errorf(ErrInvalid, "persist: FetchOffline: negative Lease %v", opt.Lease)
	}
	inner := filter
	if _, in, ok := topic.Shared(filter); ok {
		inner = in
	}
	var queue, fanout []*fetchGroup
	for ri, rt := range r.rules {
		if rt.events&OnFetch == 0 || !topic.Overlap(rt.Filter, filter) {
			continue
		}
		eff := rt.Offline
		eff.Mode = rt.Mode
		if opt.Limit != 0 {
			eff.Limit = opt.Limit
		}
		if opt.Since != 0 {
			eff.Since = opt.Since
		}
		if opt.Lease != 0 {
			eff.Lease = opt.Lease
		}
		q, list := filter, &fanout
		if rt.Mode == Queue {
			q, list = intersect(rt.Filter, inner), &queue
		}
		var g *fetchGroup
		for _, x := range *list {
			if x.store == rt.store && x.filter == q && x.opt == eff {
				g = x
				break
			}
		}
		if g == nil {
			g = &fetchGroup{store: rt.store, filter: q, opt: eff}
			*list = append(*list, g)
		}
		g.rules = append(g.rules, ri)
		g.filters = append(g.filters, rt.Filter)
	}
	call := func(g *fetchGroup) {
		g.got, g.err = r.stores[g.store].FetchOffline(ctx, clientID, g.filter, g.opt)
		if g.err != nil {
			g.err = r.ruleError("FetchOffline", g.rules, g.err)
		}
	}
	seen := map[string]bool{}
	var errs []error
	// keep appends g's messages that match filter and one of g's rule
	// filters and were not seen yet.
	keep := func(out []*Message, g *fetchGroup) []*Message {
		if g.err != nil {
			errs = append(errs, g.err)
		}
		for _, m := range g.got {
			if m == nil || seen[m.ID] || !topic.Match(filter, m.Topic) {
				continue
			}
			for _, f := range g.filters {
				if topic.Match(f, m.Topic) {
					seen[m.ID] = true
					out = append(out, m)
					break
				}
			}
		}
		return out
	}
	var out []*Message
	if opt.Limit == 0 {
		all := append(queue, fanout...)
		runGroups(all, call)
		for _, g := range all {
			out = keep(out, g)
		}
		sortByID(out)
		return out, errors.Join(errs...)
	}
	for _, g := range queue {
		left := opt.Limit - len(out)
		if left <= 0 {
			break
		}
		if g.opt.Limit == 0 || g.opt.Limit > left {
			g.opt.Limit = left
		}
		call(g)
		out = keep(out, g) // never cut: the store claimed these
	}
	if left := opt.Limit - len(out); left > 0 && len(fanout) > 0 {
		for _, g := range fanout {
			if g.opt.Limit == 0 || g.opt.Limit > left {
				g.opt.Limit = left
			}
		}
		runGroups(fanout, call)
		var more []*Message
		for _, g := range fanout {
			more = keep(more, g)
		}
		sortByID(more)
		if len(more) > left {
			more = more[:left]
		}
		out = append(out, more...)
	}
	sortByID(out)
	return out, errors.Join(errs...)
}

func runGroups(gs []*fetchGroup, call func(*fetchGroup)) {
	if len(gs) == 1 {
		call(gs[0])
		return
	}
	var wg sync.WaitGroup
	for _, g := range gs {
		wg.Go(func() { call(g) })
	}
	wg.Wait()
}

func sortByID(msgs []*Message) {
	slices.SortStableFunc(msgs, func(a, b *Message) int { return strings.Compare(a.ID, b.ID) })
}

// intersect returns the filter matching exactly the topic names both valid,
// non-shared, overlapping filters a and b match.
func intersect(a, b string) string {
	var out []string
	for {
		al, arest, amore := strings.Cut(a, "/")
		bl, brest, bmore := strings.Cut(b, "/")
		switch {
		case al == "#":
			return strings.Join(append(out, b), "/")
		case bl == "#":
			return strings.Join(append(out, a), "/")
		case al == "+":
			out = append(out, bl)
		default:
			out = append(out, al)
		}
		switch {
		case !amore && !bmore:
			return strings.Join(out, "/")
		case !amore || !bmore:
			// The other one goes on with "/#", which also matches its
			// parent level [MQTT-4.7.1-2].
			return strings.Join(out, "/")
		}
		a, b = arest, brest
	}
}

// Client returns the client's state from the store of the first rule with
// OnConnected whose store implements ClientLookup (every such rule gets
// every client). It returns an error matching ErrUnsupported when there is
// none.
func (r *Router) Client(ctx context.Context, clientID string) (*Client, error) {
	if r.closed.Load() {
		return nil, r.errClosed("Client")
	}
	for ri, rt := range r.rules {
		if l, ok := rt.Store.(ClientLookup); ok && rt.events&OnConnected != 0 {
			c, err := l.Client(ctx, clientID)
			if err != nil {
				return nil, r.ruleError("Client", []int{ri}, err)
			}
			return c, nil
		}
	}
	return nil, &Error{Store: "router", Op: "Client", Kind: ErrUnsupported, Err: fmt.Errorf("no rule with client.connected has a store that implements ClientLookup")}
}

// Subscriptions returns a client's subscriptions from the stores of every
// rule with OnSubscribed that implements SubscriptionLookup, since
// Subscribed sends each store only the subscriptions its rules overlap. A
// filter found in several stores is returned once, from the first rule's
// store; the result is ordered by filter. It returns an error matching
// ErrUnsupported when no such store implements SubscriptionLookup.
func (r *Router) Subscriptions(ctx context.Context, clientID string) ([]Subscription, error) {
	if r.closed.Load() {
		return nil, r.errClosed("Subscriptions")
	}
	type res struct {
		rules []int
		subs  []Subscription
		err   error
	}
	var lookups []*res
	byStore := make([]*res, len(r.stores))
	for ri, rt := range r.rules {
		if _, ok := rt.Store.(SubscriptionLookup); !ok || rt.events&OnSubscribed == 0 {
			continue
		}
		if byStore[rt.store] == nil {
			byStore[rt.store] = &res{}
			lookups = append(lookups, byStore[rt.store])
		}
		byStore[rt.store].rules = append(byStore[rt.store].rules, ri)
	}
	if len(lookups) == 0 {
		return nil, &Error{Store: "router", Op: "Subscriptions", Kind: ErrUnsupported, Err: fmt.Errorf("no rule with session.subscribed has a store that implements SubscriptionLookup")}
	}
	parallel(len(lookups), func(i int) {
		l := lookups[i]
		l.subs, l.err = r.rules[l.rules[0]].Store.(SubscriptionLookup).Subscriptions(ctx, clientID)
	})
	var errs []error
	var out []Subscription
	seen := map[string]bool{}
	for _, l := range lookups {
		if l.err != nil {
			errs = append(errs, r.ruleError("Subscriptions", l.rules, l.err))
			continue
		}
		for _, s := range l.subs {
			if !seen[s.Filter] {
				seen[s.Filter] = true
				out = append(out, s)
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b Subscription) int { return strings.Compare(a.Filter, b.Filter) })
	return out, nil
}

// Retained returns the retained messages matching filter from the stores
// of every rule with OnRetain whose filter overlaps it and whose store
// implements RetainLookup, keeping a store's messages only for topics its
// rules match. A topic found in several stores is returned once, from the
// first rule's store; the result is ordered by topic. It returns an error
// matching ErrUnsupported when no rule with OnRetain has a store that
// implements RetainLookup.
func (r *Router) Retained(ctx context.Context, filter string) ([]*Message, error) {
	if r.closed.Load() {
		return nil, r.errClosed("Retained")
	}
	if err := topic.ValidateFilter(filter); err != nil {
		return nil, Errorf(ErrInvalid, "persist: Retained: %w", err)
	}
	type res struct {
		rules   []int
		filters []string
		msgs    []*Message
		err     error
	}
	var lookups []*res
	byStore := make([]*res, len(r.stores))
	found := false
	for ri, rt := range r.rules {
		if _, ok := rt.Store.(RetainLookup); !ok || rt.events&OnRetain == 0 {
			continue
		}
		found = true
		if !topic.Overlap(rt.Filter, filter) {
			continue
		}
		if byStore[rt.store] == nil {
			byStore[rt.store] = &res{}
			lookups = append(lookups, byStore[rt.store])
		}
		l := byStore[rt.store]
		l.rules = append(l.rules, ri)
		l.filters = append(l.filters, rt.Filter)
	}
	if !found {
		return nil, &Error{Store: "router", Op: "Retained", Kind: ErrUnsupported, Err: fmt.Errorf("no rule with message.retain has a store that implements RetainLookup")}
	}
	parallel(len(lookups), func(i int) {
		l := lookups[i]
		l.msgs, l.err = r.rules[l.rules[0]].Store.(RetainLookup).Retained(ctx, filter)
	})
	var errs []error
	var out []*Message
	seen := map[string]bool{}
	for _, l := range lookups {
		if l.err != nil {
			errs = append(errs, r.ruleError("Retained", l.rules, l.err))
			continue
		}
		for _, m := range l.msgs {
			if m == nil || seen[m.Topic] {
				continue
			}
			for _, f := range l.filters {
				if topic.Match(f, m.Topic) {
					seen[m.Topic] = true
					out = append(out, m)
					break
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortStableFunc(out, func(a, b *Message) int { return strings.Compare(a.Topic, b.Topic) })
	return out, nil
}

// Ping pings every distinct store that implements Pinger, concurrently, and
// joins their errors.
func (r *Router) Ping(ctx context.Context) error {
	if r.closed.Load() {
		return r.errClosed("Ping")
	}
	var pingers []Pinger
	var rules [][]int
	for si, s := range r.stores {
		p, ok := s.Store().(Pinger)
		if !ok {
			continue
		}
		var rs []int
		for ri, rt := range r.rules {
			if rt.store == si {
				rs = append(rs, ri)
			}
		}
		pingers = append(pingers, p)
		rules = append(rules, rs)
	}
	errs := make([]error, len(pingers))
	parallel(len(pingers), func(i int) {
		if err := pingers[i].Ping(ctx); err != nil {
			errs[i] = r.ruleError("Ping", rules[i], err)
		}
	})
	return errors.Join(errs...)
}

// parallel calls fn(0) … fn(n-1), concurrently when n > 1.
func parallel(n int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { fn(i) })
	}
	wg.Wait()
}
