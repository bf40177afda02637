package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/mqttpersist/mqttpersist/persist"
)

// Connected records a client's connection state in mqtt:client:${clientid}
// (state, online_at, offline_at, node as the seeds, plus username, peerhost
// and millisecond times) and lists the client in mqtt:node:${node} while it
// is online there. One script on the client hash decides and writes, so a
// disconnect from a node the client has left (arriving after its connect
// on another node) changes nothing there; that node's list loses the
// client all the same. A connect is PUBLISHed on the channel of client
// notices (mqtt:connected) for the watches of every node.
func (s *Store) Connected(ctx context.Context, c *persist.Client) error {
	const op = "Connected"
	if err := s.kit.Connected(ctx, c); err != nil {
		return err
	}
	args := []any{"0", c.Node, "0", cState, "0", cNode, c.Node, cUsername, c.Username, cPeerHost, c.PeerHost}
	if c.Online {
		args[0], args[4] = "1", "1"
	}
	if c.OfflineAt.IsZero() {
		args[2] = "1" // as the seeds show a client never offline
	}
	if !c.OnlineAt.IsZero() {
		args = append(args, cOnlineAt, strconv.FormatInt(c.OnlineAt.Unix(), 10), cOnlineAtMs, strconv.FormatInt(ms(c.OnlineAt), 10))
	}
	if !c.OfflineAt.IsZero() {
		args = append(args, cOfflineAt, strconv.FormatInt(c.OfflineAt.Unix(), 10), cOfflineAtMs, strconv.FormatInt(ms(c.OfflineAt), 10))
	}
	var res *redis.Cmd
	_, err := s.run(ctx, false, func(p redis.Pipeliner) {
		res = connectedScript.EvalSha(ctx, p, []string{s.k.clientKey(c.ID)}, args...)
		// Whether or not the disconnect applies, the client is not online
		// on the node it disconnected from.
		switch {
		case c.Node == "":
		case c.Online:
			at := c.OnlineAt
			if at.IsZero() {
				at = time.Now()
			}
			p.HSet(ctx, s.k.nodeKey(c.Node), c.ID, strconv.FormatInt(at.Unix(), 10))
		default:
			p.HDel(ctx, s.k.nodeKey(c.Node), c.ID)
		}
		// The client's notice (see Watch), also of a disconnect that
		// does not apply: a node that still has a connection of a client
		// that connected elsewhere closes it; the node a client moved to
		// hears that its old node has recorded its acks.
		p.Publish(ctx, s.k.connected, clientNoticeJSON(c))
	})
	if err != nil {
		return s.kit.Fail(ctx, op, err)
	}
	r, err := res.Slice()
	if err != nil {
		return s.kit.Fail(ctx, op, err)
	}
	if len(r) != 2 {
		return s.kit.Fail(ctx, op, fmt.Errorf("connected script returned %v", r))
	}
	wrote, _ := r[0].(int64)
	prev, _ := r[1].(string)
	// A takeover (or a disconnect reported by another node of a client
	// stored with no node or offline): the client is no longer online on
	// the node it was on.
	if wrote == 1 && prev != "" && prev != c.Node {
		err = s.c.HDel(ctx, s.k.nodeKey(prev), c.ID).Err()
	}
	return s.kit.Fail(ctx, op, err)
}

// Client returns the state stored in mqtt:client:${clientID}, or an error
// matching persist.ErrNotFound.
func (s *Store) Client(ctx context.Context, clientID string) (*persist.Client, error) {
	const op = "Client"
	if err := s.kit.Lookup(ctx, op, clientID); err != nil {
		return nil, err
	}
	h, err := s.c.HGetAll(ctx, s.k.clientKey(clientID)).Result()
	if err != nil {
		return nil, s.kit.Fail(ctx, op, err)
	}
	if len(h) == 0 {
		return nil, s.kit.Fail(ctx, op, s.kit.Error(op, persist.ErrNotFound, "", fmt.Errorf("client %q: %w", clientID, persist.ErrNotFound)))
	}
	c := &persist.Client{
		ID:       clientID,
		Username: h[cUsername],
		PeerHost: h[cPeerHost],
		Node:     h[cNode],
		Online:   h[cState] == "1",
	}
	c.OnlineAt = clientTime(h, cOnlineAtMs, cOnlineAt)
	c.OfflineAt = clientTime(h, cOfflineAtMs, cOfflineAt)
	return c, nil
}

// clientTime reads a time of a client hash: the millisecond field, else the
// seeds' seconds ("undefined" or absent is zero).
func clientTime(h map[string]string, msField, secField string) time.Time {
	if t, ok := fromMs(h[msField]); ok {
		return t
	}
	if t, ok := fromSec(h[secField]); ok {
		return t
	}
	return time.Time{}
}
