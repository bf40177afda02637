package persist

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Opener opens the store a URL names. Open calls it with a context that is
// not done and the URL as the caller gave it, whose scheme is one the
// Opener was registered for.
//
// An Opener gets the URL as text, not as a *url.URL, because some store
// URLs are not RFC 3986 URLs (redis+sentinel://h1:26379,h2:26379/master
// lists several hosts; sqlite::memory: has no host): the store parses it
// as its own Open function does. The URL is the store's whole
// configuration; settings the URL cannot carry are set by calling the
// store package's constructor instead.
//
// The store returned owns the connection it made, so closing it (Closer)
// closes that. A failure to reach the database should match ErrUnavailable
// and be retryable (IsRetryable), and a malformed URL should match
// ErrInvalid; Open removes the URL's credentials from the error's text
// (RedactError), so an Opener need not, but its own Open function should.
type Opener func(ctx context.Context, rawURL string) (Store, error)

// Migrator is implemented by stores whose database needs a schema (tables,
// indexes) before use, such as sqlstore's. Migrate creates what is missing
// and keeps what is stored, so running it again, also from several
// processes at once, is harmless.
//
// Open never migrates: creating a schema is an explicit step, as in
// database/sql. A program that opened a store by URL calls Migrate when the
// store implements Migrator. A store that does not implement it has no
// schema to create (Redis keys are made as they are written) or expects
// one made by other means; it is used as it is, and no call fails for the
// lack of Migrate.
type Migrator interface {
	Migrate(ctx context.Context) error
}

var (
	openersMu sync.RWMutex
	openers   = map[string]Opener{}
)

// Register makes a store available under a URL scheme, such as "sqlite"
// or "redis+cluster", for Open. A store package calls it in an init
// function, so that a program imports the package, often blank
// (import _ "github.com/mqttpersist/mqttpersist/sqlstore"), and opens its
// URLs with Open.
//
// A scheme is lower case: a letter, then letters, digits, '+', '-' or '.'.
// Register panics if scheme is not one, if open is nil, or if the scheme
// is registered already, as database/sql.Register does for a driver name.
func Register(scheme string, open Opener) {
	if !validScheme(scheme) || strings.ToLower(scheme) != scheme {
		panic(fmt.Sprintf("persist: Register: invalid scheme %q (want lower case: a letter, then letters, digits, '+', '-' or '.')", scheme))
	}
	if open == nil {
		panic("persist: Register: nil Opener for scheme " + strconv.Quote(scheme))
	}
	openersMu.Lock()
	defer openersMu.Unlock()
	if _, dup := openers[scheme]; dup {
		panic("persist: Register called twice for scheme " + strconv.Quote(scheme))
	}
	openers[scheme] = open
}

// Schemes returns the registered URL schemes, sorted.
func Schemes() []string {
	openersMu.RLock()
	defer openersMu.RUnlock()
	out := make([]string, 0, len(openers))
	for s := range openers {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// Open opens the store that rawURL names, with the Opener registered for
// its scheme (compared without regard to case). It does not create a
// schema: see Migrator. The caller owns the store and closes it (Closer)
// when done.
//
// A context that is done returns its error. A URL with no scheme, or one
// no store registered, gives an error matching ErrInvalid that lists the
// registered schemes; a store package registers its schemes when it is
// imported. Other errors are the Opener's. The text of every error has the
// URL's credentials removed (see Redact and RedactError).
func Open(ctx context.Context, rawURL string) (Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	scheme, ok := schemeOf(rawURL)
	if !ok {
		return nil, &Error{Store: "persist", Op: "Open", Kind: ErrInvalid,
			Err: fmt.Errorf("%q is not a store URL (want scheme://…; %s)", Redact(rawURL), registered())}
	}
	op := "Open " + Redact(rawURL)
	openersMu.RLock()
	open := openers[strings.ToLower(scheme)]
	openersMu.RUnlock()
	if open == nil {
		return nil, &Error{Store: "persist", Op: op, Kind: ErrInvalid,
			Err: fmt.Errorf("unknown scheme %q (%s)", scheme, registered())}
	}
	s, err := open(ctx, rawURL)
	if err != nil {
		return nil, RedactError(err, rawURL)
	}
	if s == nil {
		return nil, &Error{Store: "persist", Op: op, Err: fmt.Errorf("the Opener of scheme %q returned no store and no error", scheme)}
	}
	return s, nil
}

// registered describes the registered schemes for an error message.
func registered() string {
	s := Schemes()
	if len(s) == 0 {
		return `no scheme is registered: import a store package, such as _ "github.com/mqttpersist/mqttpersist/sqlstore"`
	}
	return "registered: " + strings.Join(s, ", ")
}

// schemeOf returns the scheme of rawURL: the text before its first ':',
// if that is a valid scheme.
func schemeOf(rawURL string) (string, bool) {
	scheme, _, ok := strings.Cut(rawURL, ":")
	if !ok || !validScheme(scheme) {
		return "", false
	}
	return scheme, true
}

// validScheme reports whether s is an RFC 3986 scheme: a letter, then
// letters, digits, '+', '-' or '.'.
func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.'):
		default:
			return false
		}
	}
	return true
}

// redacted is the text that replaces a credential.
const redacted = "xxxxx"

// Redact returns rawURL with its credentials replaced by "xxxxx", for
// messages and logs: the password of its user info, and the value of every
// query parameter whose name says it holds a secret: key, auth, sig or
// pass, or a name ending in password, passwd, pwd, secret, token, apikey,
// accesskey, privatekey, signature or credential(s), such as sslpassword,
// client_secret, access_token or X-Amz-Signature (case, '-' and '_' do not
// count). The rest of the text is kept as it is.
//
// rawURL need not parse: when it is not a well-formed URL (a password
// holding an unescaped '#', '/' or '?', several hosts, a driver's DSN such
// as user:pass@tcp(host:3306)/db), everything between the first ':' of the
// user info and the last '@' is taken for the password, which may hide
// more than the password but never less.
func Redact(rawURL string) string {
	spans := secretSpans(rawURL)
	if len(spans) == 0 {
		return rawURL
	}
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		b.WriteString(rawURL[last:sp.from])
		b.WriteString(redacted)
		last = sp.to
	}
	b.WriteString(rawURL[last:])
	return b.String()
}

// RedactError returns err with the credentials of rawURL (see Redact)
// removed from its text, as they appear in it: as written, decoded, quoted,
// or in part (a URL parser's error may quote a piece of a malformed
// password). The error still matches what err matched with errors.Is and
// errors.As, and an *Error stays an *Error with the same Kind and
// Retryable. err itself is returned when its text holds no credential; nil
// gives nil. A store's Open function passes its errors through it, so that
// a driver's error quoting the URL shows no password.
//
// Only the text is cleaned: a driver error reached with errors.As may
// still hold the URL in its fields (url.Error.URL).
func RedactError(err error, rawURL string) error {
	if err == nil {
		return nil
	}
	secrets := secretsOf(rawURL)
	if len(secrets) == 0 {
		return err
	}
	clean := func(s string) string { return scrub(s, rawURL, secrets) }
	msg := err.Error()
	if clean(msg) == msg {
		return err
	}
	if pe, ok := err.(*Error); ok {
		c := *pe
		c.Store, c.Op = clean(c.Store), clean(c.Op)
		if c.Err != nil {
			if text := c.Err.Error(); clean(text) != text {
				c.Err = &redactedError{err: c.Err, msg: clean(text)}
			}
		}
		return &c
	}
	return &redactedError{err: err, msg: clean(msg)}
}

// redactedError is an error whose text had credentials removed.
type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// scrub replaces every secret in text by "xxxxx". Where text quotes the
// redacted URL, that is kept whole, so that a user name or host that holds
// a password's letters stays readable there.
func scrub(text, rawURL string, secrets []string) string {
	const keep = "\x00url\x00"
	shown := Redact(rawURL)
	protect := shown != rawURL && !strings.Contains(text, keep)
	if protect {
		text = strings.ReplaceAll(text, shown, keep)
	}
	for _, s := range secrets {
		text = strings.ReplaceAll(text, s, redacted)
	}
	if protect {
		text = strings.ReplaceAll(text, keep, shown)
	}
	return text
}

// secretsOf returns the texts under which the credentials of rawURL may
// appear in an error, longest first.
func secretsOf(rawURL string) []string {
	var out []string
	add := func(s string) {
		if s != "" && s != redacted && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	for _, sp := range secretSpans(rawURL) {
		s := rawURL[sp.from:sp.to]
		add(s)
		if d, err := url.PathUnescape(s); err == nil {
			add(d)
		}
		if d, err := url.QueryUnescape(s); err == nil {
			add(d)
		}
		if q := strconv.Quote(s); q[1:len(q)-1] != s {
			add(q[1 : len(q)-1])
		}
		// A parser that stops at one of these quotes the piece before it
		// (url.Parse: invalid port ":piece" after host).
		for _, piece := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune("/?#@&", r) }) {
			if len(piece) >= 3 {
				add(piece)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// span is a byte range of a URL.
type span struct{ from, to int }

// secretSpans returns the ranges of rawURL that hold credentials, in
// order: the password of the user info, then secret query values.
func secretSpans(rawURL string) []span {
	start := 0
	if i := strings.Index(rawURL, "://"); i >= 0 && validScheme(rawURL[:i]) {
		start = i + len("://")
	}
	rest := rawURL[start:]
	// at is the '@' that ends the user info in rest, or -1.
	at := -1
	if p, err := url.Parse(rawURL); err == nil && start > 0 && p.Opaque == "" {
		// As url.Parse reads it: the authority ends at the first '/', '?'
		// or '#', and the user info at its last '@'.
		authority := rest
		if end := strings.IndexAny(rest, "/?#"); end >= 0 {
			authority = rest[:end]
		}
		at = strings.LastIndex(authority, "@")
	} else {
		at = strings.LastIndex(rest, "@")
	}
	var spans []span
	if at >= 0 {
		if c := strings.IndexByte(rest[:at], ':'); c >= 0 && c+1 < at {
			spans = append(spans, span{start + c + 1, start + at})
		}
	}
	// The query: after the first '?' behind the user info, up to a '#'.
	from := start + at + 1
	q := strings.IndexByte(rawURL[from:], '?')
	if q < 0 {
		return spans
	}
	pos := from + q + 1
	query := rawURL[pos:]
	if h := strings.IndexByte(query, '#'); h >= 0 {
		query = query[:h]
	}
	for _, param := range strings.Split(query, "&") {
		name, value, ok := strings.Cut(param, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		if ok && value != "" && secretParam(name) {
			vfrom := pos + len(param) - len(value)
			spans = append(spans, span{vfrom, vfrom + len(value)})
		}
		pos += len(param) + 1
	}
	return spans
}

// secretParam reports whether a query parameter of this name holds a
// secret (see Redact).
func secretParam(name string) bool {
	n := strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(name))
	switch n {
	case "key", "auth", "sig", "pass":
		return true
	}
	for _, suffix := range []string{"password", "passwd", "pwd", "secret", "token", "apikey",
		"accesskey", "privatekey", "signature", "credential", "credentials"} {
		if strings.HasSuffix(n, suffix) {
			return true
		}
	}
	return false
}
