// Package topic validates and matches MQTT topic names and subscription filters, and indexes filters so that every filter matching a topic name is found without a scan.
//
// It follows MQTT 3.1.1 and 5.0 and imports nothing but the standard library.
// Spec clauses are cited as [MQTT-x.y.z-n]: with MQTT 3.1.1 numbers where 3.1.1 has the rule (as mochi-mqtt's tests do),
// with MQTT 5.0 numbers for UTF-8 strings [MQTT-1.5.4-1] and shared subscriptions [MQTT-4.8.2-1].
// MQTT 5.0 renumbered two wildcard rules: its [MQTT-4.7.1-1] is 3.1.1's [MQTT-4.7.1-2] ('#'), and its [MQTT-4.7.1-2] is
// 3.1.1's [MQTT-4.7.1-3] ('+').
//
// # Names and filters
//
// A topic name is what a PUBLISH carries; a filter is what a SUBSCRIBE carries and may contain wildcards.
// Both are split into levels by '/'. ValidateName and ValidateFilter enforce:
//
//   - not empty [MQTT-4.7.3-1], at most MaxLen (65535) bytes [MQTT-4.7.3-3];
//   - valid UTF-8 [MQTT-1.5.4-1] and no U+0000 [MQTT-4.7.3-2];
//   - a name has no wildcard '+' or '#' [MQTT-3.3.2-2];
//   - in a filter, '#' is alone in its level and is the last level [MQTT-4.7.1-2], and '+' is alone in its level [MQTT-4.7.1-3];
//   - a shared filter is "$share/" + a non-empty share name without '/', '+' or '#' + "/" + a non-empty filter [MQTT-4.8.2-1] [MQTT-4.8.2-2].
//
// Empty levels are valid ("a//b", "/a", "a/"). Control characters such as CR and LF are allowed: the spec says
// a topic "should not" contain them, and stores must round-trip whatever a broker accepted.
//
// # Matching
//
// Match(filter, name) follows the spec: '+' matches exactly one level, which may be empty; '#' matches any number of levels,
// including none, so "a/#" matches "a" itself [MQTT-4.7.1-2]; other levels match byte for byte (no Unicode normalisation,
// case matters). A filter whose first level is '+' or '#' does not match a name that starts with '$', such as "$SYS/uptime"
// [MQTT-4.7.2-1]. A shared filter "$share/<group>/<filter>" matches exactly as <filter> does.
// An invalid filter or name matches nothing. Match does not allocate.
//
// Overlap(a, b) reports whether some topic name is matched by both filters, and Subsumes(outer, inner) whether outer matches
// every name that inner matches; a router uses them to relate subscriptions to rule filters without knowing the names in advance.
// Both are exact, not approximations, and count only valid names: "/#" and "+" do not overlap, because the only name both
// would match is the parent level of "/#", which is "", and "" is not a topic name.
//
// # Prefix narrowing
//
// Prefix(f) returns the literal levels of f before its first wildcard, joined by '/'; for a shared filter it is taken from the
// inner filter. A database can use it to narrow candidates before Match picks the exact ones. For a valid filter f with
// inner filter g (g is f unless f is shared) and p = Prefix(f):
//
//   - if g has no wildcard (HasWildcard(f) is false), p == g and the only name f matches is p;
//   - otherwise, if p == "", f gives no narrowing: any name may match (this includes filters such as "+/x", which matches "/x",
//     and "/+", whose literal first level is empty). If g starts with a wildcard, names starting with '$' do not match;
//   - otherwise, every name f matches starts with p + "/", except that the name p itself also matches when g is p + "/#"
//     (the parent-level rule). So "topic = p OR topic LIKE p || '/%'" (with LIKE's '%' and '_' escaped in p) selects a
//     superset of the matches.
//
// For example Prefix("sensor/+/temp") is "sensor", Prefix("a/b/#") is "a/b" (and "a/b/#" matches "a/b"), Prefix("#") is ""
// and Prefix("a/b") is "a/b".
//
// # Index
//
// Index[V] is a trie keyed by filter level. Add(filter, v) stores a pair, Remove deletes it, and Match(name) or Each(name, fn)
// return every pair whose filter matches name, following the same rules as Match. A lookup follows, level by level, the
// literal child and the '+' child of each node it reaches, so its cost grows with the levels of the name, the '+' branches
// present along the way and the number of matches, not with the number of stored filters.
// An Index is safe for concurrent use: lookups share a read lock and do not block each other; Add and Remove take the write
// lock. Each calls its function under the read lock, so that function must not call Add or Remove.
// Shared filters are indexed under their inner filter and reported with the filter as added.
// An Index of 100,000 filters of the form "site/<n>/device/<m>/temp" takes about 33 MB.
//
// # Errors
//
// Validation errors are of type *Error and match ErrInvalid with errors.Is. The message names the topic, the offending
// level (by 0-based index and text) and the rule, for example:
//
//	topic: invalid filter "a/b#/c": level 1 "b#": '#' must be alone in its level [MQTT-4.7.1-2]
//
// Topics in messages are quoted with Go escapes, so CR, LF and invalid bytes are visible; very long topics are shortened.
//
// # Caveats
//
// MQTT 3.1.1 has no shared subscriptions: there "$share/g/a" is a plain filter with the literal first level "$share". This
// package always treats it as shared, as MQTT 5.0 brokers do.
// The prefix is case-sensitive, as the spec writes it: "$SHARE/g/a" is a plain filter here. mochi-mqtt v2 compares the
// first level case-insensitively (strings.EqualFold with "$SHARE"), so an adapter that feeds mochi's filters to this
// package should normalise that level to "$share" first.
// The value type of an Index must be comparable at run time too: an interface value holding a slice panics, as it would
// as a map key.
// Go strings cannot carry unpaired UTF-16 surrogates other than as invalid UTF-8 bytes, which are rejected.
// The spec allows a server to reject names and filters for further reasons (such as a maximum number of levels);
// this package checks only the protocol's own rules.
package topic
