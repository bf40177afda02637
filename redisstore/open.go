package redisstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
)

// The schemes Open takes are registered with persist.Register, so that a
// program importing this package opens them with persist.Open.
func init() {
	for _, scheme := range []string{"redis", "rediss", "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster"} {
		persist.Register(scheme, openURL)
	}
}

// openURL is the persist.Opener of every scheme Open takes: Open with
// default Options, but for a query parameter prefix=NAME, which sets
// Options.Prefix (several brokers, or tests, can share one Redis) and is
// taken out of the URL before Open parses it.
func openURL(ctx context.Context, rawURL string) (persist.Store, error) {
	rest, prefix, err := cutParam(rawURL, "prefix")
	if err != nil {
		return nil, persist.RedactError(persist.Wrap(storeName, "Open "+persist.Redact(rawURL), persist.ErrInvalid, err, false), rawURL)
	}
	s, err := Open(ctx, rest, &Options{Prefix: prefix})
	if err != nil {
		if pe, ok := err.(*persist.Error); ok && rest != rawURL {
			pe.Op = "Open " + persist.Redact(rawURL) // the URL as given, with its prefix
		}
		return nil, err
	}
	return s, nil
}

// cutParam removes the query parameter name from u and returns its value
// (the last one given); the other parameters are kept, encoded again.
func cutParam(u, name string) (rest, value string, err error) {
	base, query, ok := strings.Cut(u, "?")
	if !ok {
		return u, "", nil
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", "", fmt.Errorf("bad query: %w", err)
	}
	if !q.Has(name) {
		return u, "", nil
	}
	value = q.Get(name)
	q.Del(name)
	if len(q) == 0 {
		return base, value, nil
	}
	return base + "?" + q.Encode(), value, nil
}

// Open connects to the Redis at rawURL, pings it (every master of a
// Cluster), so that a malformed URL or an unreachable server fails here
// with an error naming the address but never the password, and returns a
// store that owns the client (Close closes it):
//
//	redis://[user:pass@]host:port[/db][?go-redis options]    one server (redis.ParseURL)
//	rediss://…                                                the same over TLS
//	redis+sentinel://[user:pass@]host:port[,host:port…]/master[/db]
//	                                                          Sentinel: the sentinels' addresses and
//	                                                          the master's name; user:pass is the master's
//	redis+cluster://[user:pass@]host:port[,host:port…]        a Redis Cluster, from any of its nodes
//	rediss+sentinel://…, rediss+cluster://…                   the same over TLS
//
// The +sentinel and +cluster forms take no query parameters; build the
// client yourself and call New for more settings.
//
// persist.Open takes the same URLs once this package is imported, also
// blank (import _ "github.com/mqttpersist/mqttpersist/redisstore"), with
// one more query parameter in every form: prefix=NAME sets Options.Prefix
// (redis://host:6379/0?prefix=app1, redis+cluster://h:p,h:p?prefix=app1).
func Open(ctx context.Context, rawURL string, opts *Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	op := "Open " + persist.Redact(rawURL)
	client, err := newClient(rawURL)
	if err != nil {
		return nil, persist.RedactError(persist.Wrap(storeName, op, persist.ErrInvalid, withoutURL(err), false), rawURL)
	}
	s, err := New(client, opts)
	if err != nil {
		client.Close()
		return nil, err
	}
	s.own = true
	if err := s.Ping(ctx); err != nil {
		client.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		var pe *persist.Error
		if e, ok := err.(*persist.Error); ok {
			pe = e
		}
		if pe != nil {
			pe.Op = op
			if pe.Kind == nil {
				pe.Kind = persist.ErrUnavailable
			}
			return nil, persist.RedactError(pe, rawURL)
		}
		return nil, persist.RedactError(persist.Wrap(storeName, op, persist.ErrUnavailable, err, true), rawURL)
	}
	return s, nil
}

// newClient makes the client for a URL Open takes.
func newClient(rawURL string) (redis.UniversalClient, error) {
	scheme, rest, ok := strings.Cut(rawURL, "://")
	if !ok {
		return nil, fmt.Errorf("not a URL (want redis://host:port/db, redis+sentinel://host:port/master or redis+cluster://host:port,host:port)")
	}
	switch strings.ToLower(scheme) {
	case "redis", "rediss":
		o, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, err
		}
		return redis.NewClient(o), nil
	case "redis+sentinel", "rediss+sentinel", "redis+cluster", "rediss+cluster":
	default:
		return nil, fmt.Errorf("unknown scheme %q (want redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster)", scheme)
	}
	tlsOn := strings.HasPrefix(strings.ToLower(scheme), "rediss")
	if strings.ContainsAny(rest, "?#") {
		return nil, fmt.Errorf("%s URLs take no query parameters or fragment", scheme)
	}
	var user, pass string
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		info := rest[:at]
		rest = rest[at+1:]
		u, p, _ := strings.Cut(info, ":")
		var err error
		if user, err = url.PathUnescape(u); err != nil {
			return nil, fmt.Errorf("bad user name: %v", err)
		}
		if pass, err = url.PathUnescape(p); err != nil {
			return nil, fmt.Errorf("bad password encoding")
		}
	}
	hosts, path, _ := strings.Cut(rest, "/")
	var addrs []string
	for _, h := range strings.Split(hosts, ",") {
		if h == "" {
			return nil, fmt.Errorf("empty address in %q", hosts)
		}
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			return nil, fmt.Errorf("address %q: %v", h, err)
		}
		if host == "" {
			host = "localhost"
		}
		addrs = append(addrs, net.JoinHostPort(host, port))
	}
	var tlsCfg *tls.Config
	if tlsOn {
		host, _, _ := net.SplitHostPort(addrs[0])
		tlsCfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	if strings.HasSuffix(strings.ToLower(scheme), "+cluster") {
		if strings.Trim(path, "/") != "" {
			return nil, fmt.Errorf("a cluster URL has no path (a Redis Cluster has database 0 only), got /%s", path)
		}
		return redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs, Username: user, Password: pass, TLSConfig: tlsCfg}), nil
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if parts[0] == "" {
		return nil, fmt.Errorf("no master name (want redis+sentinel://host:port/mastername[/db])")
	}
	if len(parts) > 2 {
		return nil, fmt.Errorf("path /%s: want /mastername or /mastername/db", path)
	}
	master, err := url.PathUnescape(parts[0])
	if err != nil {
		return nil, fmt.Errorf("bad master name %q", parts[0])
	}
	db := 0
	if len(parts) == 2 {
		if db, err = strconv.Atoi(parts[1]); err != nil || db < 0 {
			return nil, fmt.Errorf("bad database number %q", parts[1])
		}
	}
	return redis.NewFailoverClient(&redis.FailoverOptions{
		MasterName: master, SentinelAddrs: addrs, Username: user, Password: pass, DB: db, TLSConfig: tlsCfg,
		// go-redis retries each dial 5 times per sentinel and command
		// attempt: over 30 s before an unreachable setup says so.
		DialerRetries: 1,
	}), nil
}

// withoutURL returns err without url.Parse's copy of the URL (Open names
// the URL once, redacted).
func withoutURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
