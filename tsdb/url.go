package tsdb

import (
	"fmt"
	"net/url"
	"strconv"

	"github.com/mqttpersist/mqttpersist/persist"
)

// URL is a writer's URL as its Open reads it (the schemes the writer
// packages register with persist.Register): the parsed URL, its query, the
// templates file it names, and errors that say what is wrong with it in
// one style ("<store>: Open <redacted URL>: <what>", matching
// persist.ErrInvalid).
type URL struct {
	*url.URL
	Query     url.Values
	Templates string // the templates parameter, required

	store, raw string
}

// ParseURL parses rawURL for store's Open. It must have a templates
// parameter, and a host unless needHost is false.
func ParseURL(store, rawURL string, needHost bool) (*URL, error) {
	u := &URL{store: store, raw: rawURL}
	var err error
	if u.URL, err = url.Parse(rawURL); err != nil {
		return nil, u.Bad("not a URL: %v", err)
	}
	if needHost && u.Host == "" {
		return nil, u.Bad("no host")
	}
	u.Query = u.URL.Query()
	if u.Templates = u.Query.Get("templates"); u.Templates == "" {
		return nil, u.Bad("no templates file (add ?templates=FILE)")
	}
	return u, nil
}

// Bad returns the error of a URL that says format.
func (u *URL) Bad(format string, args ...any) error {
	return &persist.Error{Store: u.store, Op: "Open", Kind: persist.ErrInvalid,
		Err: fmt.Errorf("%s: %s", persist.Redact(u.raw), fmt.Sprintf(format, args...))}
}

// Bool sets *to from the parameter name when the URL has it.
func (u *URL) Bool(name string, to *bool) error {
	s := u.Query.Get(name)
	if s == "" {
		return nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return u.Bad("%s=%q: want true or false", name, s)
	}
	*to = v
	return nil
}

// Int sets *to from the parameter name when the URL has it; it must be
// at least least.
func (u *URL) Int(name string, to *int, least int) error {
	s := u.Query.Get(name)
	if s == "" {
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < least {
		return u.Bad("%s=%q: want a whole number of at least %d", name, s, least)
	}
	*to = n
	return nil
}
