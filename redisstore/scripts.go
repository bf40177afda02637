package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// Every script touches one key only, so each runs atomically on the node
// that holds the key, in a Redis Cluster too, without hash tags.

// nowMs in a script is the server's time in milliseconds.
const luaNow = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// indexScript adds message IDs to a topic index (KEYS[1]) with their
// expiry as score (ARGV: score, id, score, id, …), drops the entries that
// have expired, and sets the key's expiry to its latest entry's (none when
// an entry never expires).
var indexScript = redis.NewScript(luaNow + `
redis.call('ZADD', KEYS[1], unpack(ARGV))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if #top == 0 then return 0 end
if top[2] == 'inf' then
	redis.call('PERSIST', KEYS[1])
else
	redis.call('PEXPIREAT', KEYS[1], top[2])
end
return 1
`)

// claimScript claims a queue message (KEYS[1], its hash) for a client
// (ARGV[1]) for a lease of ARGV[2] milliseconds from now, if the message
// exists, is a queue message, is not claimed by another client with a
// lease that still runs (the client's own claim is renewed), has not
// expired and arrived at or after ARGV[3] (milliseconds; 0: any time). It
// returns the message's fields, or false.
var claimScript = redis.NewScript(luaNow + `
local f = redis.call('HMGET', KEYS[1], 'mode', 'claim_until', 'expiry_ms', 'ts_ms', 'claimed_by')
if f[1] ~= 'queue' then return false end
if f[2] and tonumber(f[2]) and tonumber(f[2]) > now and f[5] ~= ARGV[1] then return false end
if f[3] and tonumber(f[3]) and tonumber(f[3]) <= now then return false end
local since = tonumber(ARGV[3])
if since > 0 and not (f[4] and tonumber(f[4]) and tonumber(f[4]) >= since) then return false end
redis.call('HSET', KEYS[1], 'claimed_by', ARGV[1], 'claim_until', now + tonumber(ARGV[2]))
return redis.call('HGETALL', KEYS[1])
`)

// ackScript handles an ack by client ARGV[1] of the message whose hash is
// KEYS[1]: a queue message claimed by the client is deleted (2); a queue
// message claimed by another or by none is left (1); anything else — a
// fanout message, or none — returns 0.
var ackScript = redis.NewScript(`
local f = redis.call('HMGET', KEYS[1], 'mode', 'claimed_by')
if f[1] == 'queue' then
	if f[2] == ARGV[1] then
		redis.call('DEL', KEYS[1])
		return 2
	end
	return 1
end
return 0
`)

// cursorScript moves a fanout cursor (KEYS[1], a string holding a message
// ID) to ARGV[1] if that ID is greater, byte-wise, and sets the key's TTL to
// ARGV[2] milliseconds (0: none).
var cursorScript = redis.NewScript(`
local function greater(a, b)
	local n = math.min(#a, #b)
	for i = 1, n do
		local x, y = string.byte(a, i), string.byte(b, i)
		if x ~= y then return x > y end
	end
	return #a > #b
end
local c = redis.call('GET', KEYS[1])
if (not c) or greater(ARGV[1], c) then
	redis.call('SET', KEYS[1], ARGV[1])
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
	redis.call('PEXPIRE', KEYS[1], ttl)
else
	redis.call('PERSIST', KEYS[1])
end
return 1
`)

// replaceScript replaces the hash KEYS[1] by the field/value pairs in
// ARGV[2:], expiring at ARGV[1] (milliseconds; 0: never).
var replaceScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
local at = tonumber(ARGV[1])
if at > 0 then redis.call('PEXPIREAT', KEYS[1], at) end
return 1
`)

// registerScript adds topics to a registry (KEYS[1] scored by expiry,
// KEYS[2] scored 0 for ranges by name; ARGV[2:]: score, topic, …): with
// ARGV[1] "gt" a topic's score only grows (the latest message of the
// topic), with "set" it is replaced (the retained message). It then drops
// up to 1000 expired topics from both sets.
var registerScript = redis.NewScript(luaNow + `
if ARGV[1] == 'gt' then
	redis.call('ZADD', KEYS[1], 'GT', unpack(ARGV, 2))
else
	redis.call('ZADD', KEYS[1], unpack(ARGV, 2))
end
local lex = {}
for i = 3, #ARGV, 2 do
	lex[#lex + 1] = 0
	lex[#lex + 1] = ARGV[i]
end
redis.call('ZADD', KEYS[2], unpack(lex))
local gone = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, 1000)
if #gone > 0 then
	redis.call('ZREM', KEYS[1], unpack(gone))
	redis.call('ZREM', KEYS[2], unpack(gone))
end
return #gone
`)

// unregisterScript removes topic ARGV[1] from a registry (KEYS as above).
var unregisterScript = redis.NewScript(`
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('ZREM', KEYS[2], ARGV[1])
`)

// lookupScript returns the topics of a registry (KEYS as above) whose
// names lie in the range ARGV[1]..ARGV[2] (ZRANGE BYLEX syntax) and that
// have not expired.
var lookupScript = redis.NewScript(luaNow + `
local names = redis.call('ZRANGE', KEYS[2], ARGV[1], ARGV[2], 'BYLEX')
local out = {}
for i = 1, #names, 500 do
	local part = {unpack(names, i, math.min(i + 499, #names))}
	local sc = redis.call('ZMSCORE', KEYS[1], unpack(part))
	for j = 1, #part do
		local v = sc[j]
		if v and (v == 'inf' or tonumber(v) > now) then out[#out + 1] = part[j] end
	end
end
return out
`)

// connectedScript writes a client's state to its hash (KEYS[1]): ARGV[1]
// is "1" for a connect and "0" for a disconnect, ARGV[2] the node, ARGV[3]
// "1" to set offline_at to "undefined" where it is absent, ARGV[4:] the
// field/value pairs to set. A disconnect from a node other than the one the
// client is stored online on (a non-empty node) changes nothing: the
// client moved. It returns {1, the node stored before} when it wrote and
// {0, the stored node} when it did not.
var connectedScript = redis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'state', 'node')
local node = cur[2] or ''
if ARGV[1] == '0' and cur[1] == '1' and node ~= '' and node ~= ARGV[2] then
	return {0, node}
end
redis.call('HSET', KEYS[1], unpack(ARGV, 4))
if ARGV[3] == '1' then redis.call('HSETNX', KEYS[1], 'offline_at', 'undefined') end
return {1, node}
`)

var allScripts = []*redis.Script{indexScript, claimScript, ackScript, cursorScript, replaceScript, registerScript, unregisterScript, lookupScript, connectedScript}

// run runs the commands fill queues in one pipeline (a MULTI/EXEC
// transaction when tx is set, except on a Cluster, whose transactions
// cannot span hash slots) and returns them.
// Script calls that fail because the server does not know the script
// (NOSCRIPT: a new or restarted server, SCRIPT FLUSH) are run once more after
// loading every script; a call that failed so had no effect. The error is
// the first of a command other than redis.Nil.
func (s *Store) run(ctx context.Context, tx bool, fill func(p redis.Pipeliner)) ([]redis.Cmder, error) {
	if _, ok := s.c.(*redis.ClusterClient); ok {
		tx = false
	}
	var p redis.Pipeliner
	if tx {
		p = s.c.TxPipeline()
	} else {
		p = s.c.Pipeline()
	}
	fill(p)
	if p.Len() == 0 {
		return nil, nil
	}
	cmds, _ := p.Exec(ctx)
	var again []*redis.Cmd
	for _, c := range cmds {
		if rc, ok := c.(*redis.Cmd); ok && redis.HasErrorPrefix(rc.Err(), "NOSCRIPT") {
			again = append(again, rc)
		}
	}
	if len(again) > 0 {
		for _, sc := range allScripts {
			if err := sc.Load(ctx, s.c).Err(); err != nil {
				return cmds, err
			}
		}
		p2 := s.c.Pipeline()
		redo := make([]*redis.Cmd, len(again))
		for i, c := range again {
			redo[i] = p2.Do(ctx, c.Args()...)
		}
		_, _ = p2.Exec(ctx)
		for i, c := range again {
			c.SetVal(redo[i].Val())
			c.SetErr(redo[i].Err())
		}
	}
	return cmds, firstErr(cmds)
}

// firstErr returns the first error of cmds other than redis.Nil.
func firstErr(cmds []redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
	}
	return nil
}
