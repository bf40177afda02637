package mongostore

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"

	"github.com/mqttpersist/mqttpersist/persist"
)

// DefaultDatabase is the database of a URL without one, the seeds' own.
const DefaultDatabase = "mqtt"

// The schemes Open takes are registered with persist.Register, so that a
// program importing this package opens them with persist.Open.
func init() {
	for _, scheme := range []string{"mongodb", "mongodb+srv"} {
		persist.Register(scheme, func(ctx context.Context, rawURL string) (persist.Store, error) {
			return Open(ctx, rawURL, nil)
		})
	}
}

// storeParams are the query parameters Open reads itself and takes out of
// the URL before the driver reads it.
var storeParams = []string{"w_mode", "r_mode", "payload_format", "collection_prefix"}

// Open connects to the MongoDB deployment at rawURL, pings it, so that a
// malformed URL or an unreachable server fails here with an error that
// names the URL without its password, and returns a store on the URL's
// database (DefaultDatabase when it names none) that owns the client
// (Close disconnects it):
//
//	mongodb://[user:pass@]host[:port][,host:port…]/[database][?options]
//	mongodb+srv://[user:pass@]host/[database][?options]
//
// The options are the driver's connection string options — among them
// replicaSet, authSource, tls, tlsCAFile, tlsCertificateKeyFile, w,
// readPreference, maxPoolSize, connectTimeoutMS, serverSelectionTimeoutMS
// (the seeds' rs_set_name, auth_source, ssl, cacertfile, certfile and
// keyfile, c_pool_size and topology timeouts) — and four of this package,
// which override opts:
//
//	w_mode=safe|unsafe            Options.Unsafe (the seeds' w_mode)
//	r_mode=master|slave_ok        Options.LookupReadPreference: primary or secondaryPreferred (r_mode)
//	payload_format=mongo_json|plain_text   Options.PayloadFormat
//	collection_prefix=NAME        Options.CollectionPrefix
//
// Open does not create the indexes: call Migrate.
func Open(ctx context.Context, rawURL string, opts *Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	op := "Open " + persist.Redact(rawURL)
	fail := func(kind error, err error, retry bool) error {
		return persist.RedactError(persist.Wrap(storeName, op, kind, err, retry), rawURL)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	rest, db, err := parseURL(rawURL, &o)
	if err != nil {
		return nil, fail(persist.ErrInvalid, err, false)
	}
	copts := options.Client().ApplyURI(rest)
	if err := copts.Validate(); err != nil {
		return nil, fail(persist.ErrInvalid, err, false)
	}
	if copts.ServerSelectionTimeout == nil {
		copts.SetServerSelectionTimeout(10 * time.Second)
	}
	client, err := mongo.Connect(copts)
	if err != nil {
		return nil, fail(persist.ErrInvalid, err, false)
	}
	s, err := New(client.Database(db), &o)
	if err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	s.own = true
	if err := s.Ping(ctx); err != nil {
		_ = client.Disconnect(context.Background())
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if pe, ok := err.(*persist.Error); ok {
			c := *pe
			c.Op = op
			if c.Kind == nil {
				c.Kind, c.Retryable = persist.ErrUnavailable, true
			}
			return nil, persist.RedactError(&c, rawURL)
		}
		return nil, fail(persist.ErrUnavailable, err, true)
	}
	return s, nil
}

// parseURL takes the store's parameters out of rawURL into o and returns
// the rest of the URL for the driver and the database the URL names.
func parseURL(rawURL string, o *Options) (rest, db string, err error) {
	scheme, after, ok := strings.Cut(rawURL, "://")
	if !ok || (!strings.EqualFold(scheme, "mongodb") && !strings.EqualFold(scheme, "mongodb+srv")) {
		return "", "", fmt.Errorf("not a mongodb:// or mongodb+srv:// URL")
	}
	after, query, _ := strings.Cut(after, "?")
	// The database is the path after the hosts, which hold no '/'.
	hosts, path, _ := strings.Cut(after, "/")
	if path != "" {
		if db, err = url.PathUnescape(path); err != nil {
			return "", "", fmt.Errorf("database %q: %v", path, err)
		}
	}
	if db == "" {
		db = DefaultDatabase
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return "", "", fmt.Errorf("bad query: %v", err)
	}
	if q.Has("w_mode") {
		switch v := q.Get("w_mode"); v {
		case "safe":
			o.Unsafe = false
		case "unsafe":
			o.Unsafe = true
		default:
			return "", "", fmt.Errorf("w_mode=%q (want safe or unsafe)", v)
		}
	}
	if q.Has("r_mode") {
		switch v := q.Get("r_mode"); v {
		case "master":
			o.LookupReadPreference = readpref.Primary()
		case "slave_ok":
			o.LookupReadPreference = readpref.SecondaryPreferred()
		default:
			return "", "", fmt.Errorf("r_mode=%q (want master or slave_ok)", v)
		}
	}
	if q.Has("payload_format") {
		o.PayloadFormat = PayloadFormat(q.Get("payload_format"))
	}
	if q.Has("collection_prefix") {
		o.CollectionPrefix = q.Get("collection_prefix")
	}
	for _, p := range storeParams {
		q.Del(p)
	}
	rest = scheme + "://" + hosts + "/"
	if path != "" {
		rest += path
	}
	if len(q) > 0 {
		rest += "?" + q.Encode()
	}
	return rest, db, nil
}
