package persist

import "context"

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
