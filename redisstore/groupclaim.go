package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// groupClaimChunk is how many IDs one groupClaimScript call takes.
const groupClaimChunk = 1000

// Claim claims the message IDs in a shared subscription group for owner
// until lease from now (see persist.Claimer): per ID a key
// mqtt:groupclaim:{<group>}:<id> holding the owner, with the lease as its
// TTL (PX, on the server's clock), written by a script that takes the IDs
// whose key is absent (never claimed, or its lease ran out and Redis
// dropped it) or holds owner already (renewed). A lease of zero or less
// deletes the keys of the IDs that hold owner. The group is the keys' hash
// tag, so that one script call decides a batch in one step on a Cluster.
func (s *Store) Claim(ctx context.Context, group, owner string, lease time.Duration, ids ...string) ([]string, error) {
	const op = "Claim"
	if err := s.kit.Claim(ctx, group, owner, ids); err != nil || len(ids) == 0 {
		return nil, err
	}
	ms := int64(0) // release
	if lease > 0 {
		ms = int64((lease + time.Millisecond - 1) / time.Millisecond)
	}
	var calls []*redis.Cmd
	_, err := s.run(ctx, false, func(p redis.Pipeliner) {
		for i := 0; i < len(ids); i += groupClaimChunk {
			part := ids[i:min(i+groupClaimChunk, len(ids))]
			keys := make([]string, len(part))
			for j, id := range part {
				keys[j] = s.k.groupClaimKey(group, id)
			}
			calls = append(calls, groupClaimScript.EvalSha(ctx, p, keys, owner, ms))
		}
	})
	if err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	if ms == 0 {
		return nil, nil
	}
	var won []string
	for c, call := range calls {
		got, err := call.Int64Slice()
		if err != nil {
			return nil, s.kit.Fail(ctx, op, err)
		}
		for _, j := range got {
			won = append(won, ids[c*groupClaimChunk+int(j)-1])
		}
	}
	return won, nil
}
