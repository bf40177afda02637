package mqtttest

import (
	"context"

	"github.com/mqttpersist/mqttpersist/examples/load/loadgen"
)

// LoadOptions describe a load run: Publishers clients each publish Messages
// messages at QoS to Topic+"/<publisher>", and one persistent subscriber to
// Topic+"/#" counts what arrives. It is loadgen.Options (the load
// generator lives there, importable outside this module).
type LoadOptions = loadgen.Options

// LoadResult is what a load run measured (loadgen.Result).
type LoadResult = loadgen.Result

// Load runs o against a broker and returns what arrived. It fails only
// when a client cannot connect or publish; lost or repeated messages are
// reported in the result.
func Load(ctx context.Context, o LoadOptions) (LoadResult, error) {
	return loadgen.Run(ctx, o)
}
