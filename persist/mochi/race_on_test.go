//go:build race

package mochi_test

// raceEnabled is true when the tests run with the race detector, which
// makes the pure-Go SQLite driver many times slower: big tests shrink.
const raceEnabled = true
