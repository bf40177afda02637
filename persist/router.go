package persist

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mqttpersist/mqttpersist/topic"
)

// Rule sends the events of the topics matching Filter to Store, as a
// reference backend's hook lines do (see the package doc):
// backend.<db>.hook.<event>.<n> = {"topic": …, "action": …}.
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
	// stored (the on_message_store function of a backend hook).
	QoS0 bool
	// Expiry sets Message.Expiry to Time+Expiry on published messages that
	// have no expiry (a backend's expired_after); 0 means no default.
	Expiry time.Duration
	// Offline holds the defaults of FetchOffline (a backend's offline_opts):
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
	limits Limits      // what every store keeps: the Min of their Limits
	mixed  bool        // the stores' Limits differ
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
	for i, p := range r.stores {
		l := LimitsOf(p)
		if i > 0 && l != r.limits {
			r.mixed = true
		}
		r.limits = r.limits.Min(l)
	}
	return r, nil
}

// Limits returns what every store of the Router keeps (see Limiter).
func (r *Router) Limits() Limits { return r.limits }

// check enters op and checks its input once for every store: fn runs
// with the stores' common Limits, and the returned context, marked
// Checked, lets the Router's pipelines and stores skip their own checks.
// Input that fails only because one store keeps less than another (the
// stores' Limits differ and the input is within MQTT's) goes to the stores
// unmarked, so that each decides by its own Limits. A context marked by a
// Router or Pipeline above is not checked again.
func (r *Router) check(ctx context.Context, op string, fn func(Limits) error) (context.Context, error) {
	if r.closed.Load() {
		return ctx, r.errClosed(op)
	}
	if CheckedFor(ctx, r.limits) {
		return ctx, nil
	}
	err := fn(r.limits)
	if err == nil {
		return withChecked(ctx, &r.limits), nil
	}
	if r.mixed && fn(Limits{}) == nil {
		return ctx, nil
	}
	return ctx, ownErr("router", op, err)
}

// ownErr names the store and op in an error of the checks.
func ownErr(store, op string, err error) error {
	if pe, ok := err.(*Error); ok {
		c := *pe
		c.Store, c.Op = store, op
		return &c
	}
	return err
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
	// Room for the rules and counts of the usual job (one or two rules).
	ruleBuf  [2]int
	countBuf [2]uint64
}

// add counts n items of rule i.
func (j *job) add(i int, n uint64) {
	for k, x := range j.rules {
		if x == i {
			j.counts[k] += n
			return
		}
	}
	if j.rules == nil {
		j.rules, j.counts = j.ruleBuf[:0], j.countBuf[:0]
	}
	j.rules = append(j.rules, i)
	j.counts = append(j.counts, n)
}

// run calls every job, concurrently when there are several, counts the
// results and joins the errors, each wrapped in a RuleError.
func (r *Router) run(op string, jobs []*job) error {
	if len(jobs) == 1 {
		return errors.Join(r.done(op, jobs[0], jobs[0].call()))
	}
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Go(func() { errs[i] = j.call() })
	}
	wg.Wait()
	for i, j := range jobs {
		errs[i] = r.done(op, j, errs[i])
	}
	return errors.Join(errs...)
}

// done counts the result of job j, whose call returned err, and returns
// err wrapped in a RuleError.
func (r *Router) done(op string, j *job, err error) error {
	for k, ri := range j.rules {
		if err != nil {
			r.rules[ri].failed.Add(j.counts[k])
		} else {
			r.rules[ri].written.Add(j.counts[k])
		}
	}
	if err != nil {
		return r.ruleError(op, j.rules, err)
	}
	return nil
}

func (r *Router) ruleError(op string, rules []int, err error) error {
	names := make([]string, len(rules))
	for k, ri := range rules {
		names[k] = r.rules[ri].name
	}
	return &RuleError{Rules: names, Op: op, Err: err}
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
