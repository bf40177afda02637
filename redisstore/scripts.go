package redisstore

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// A script runs atomically on the node that holds its keys, so on a Redis
// Cluster every key of one call must be in one hash slot: most scripts
// touch one key; the fanout scripts touch a topic's keys (hash tag {topic})
// or a client's cursor keys (hash tag {clientid}), and the topic
// registries' two sets share a tag.

// nowMs in a script is the server's time in milliseconds.
const luaNow = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// luaGreater compares strings byte-wise (Lua's own comparison follows the
// locale).
const luaGreater = `local function greater(a, b)
	local n = math.min(#a, #b)
	for i = 1, n do
		local x, y = string.byte(a, i), string.byte(b, i)
		if x ~= y then return x > y end
	end
	return #a > #b
end
`

// luaSetTTL is setTTL(k, v, ttl, ...): SET k v with a TTL of ttl
// milliseconds (a decimal string, "0": none, which SET gives by itself),
// and SET's further options (GET).
//
// The scripts pass numbers to redis.call as strings: Redis 7.0 formats a
// Lua number argument with printf's %.17g, which costs more than most
// calls it is an argument of.
const luaSetTTL = `local function setTTL(k, v, ttl, ...)
	if ttl ~= '0' then return redis.call('SET', k, v, 'PX', ttl, ...) end
	return redis.call('SET', k, v, ...)
end
`

// luaQueueIndex is queueIndex(k, a, now): it adds message IDs to a
// topic's queue index k with their expiry as score (a: score, id, score,
// id, …), drops the entries that have expired, and sets the key's expiry
// to its latest entry's (none when an entry never expires).
const luaQueueIndex = `local function queueIndex(k, a, now)
	redis.call('ZADD', k, unpack(a))
	redis.call('ZREMRANGEBYSCORE', k, '-inf', string.format('%d', now))
	local top = redis.call('ZRANGE', k, '-1', '-1', 'WITHSCORES')
	if #top == 0 then return 0 end
	if top[2] == 'inf' then
		redis.call('PERSIST', k)
	else
		redis.call('PEXPIREAT', k, top[2])
	end
	return 1
end
`

// queueIndexScript is queueIndex of KEYS[1] and ARGV.
var queueIndexScript = redis.NewScript(luaNow + luaQueueIndex + `return queueIndex(KEYS[1], ARGV, now)`)

// luaFanoutIndex is fanoutIndex(kidx, kseq, kexp, kids, a, top, now,
// us, slack): it stores a topic's fanout message IDs (a: id, expiry score,
// id, expiry score, …; top: a score no less than the latest of those,
// given by the caller so that the loop parses none) in its four keys:
// kidx the index, scored by position (seq); kseq the topic's counter, the
// last position given; kexp the IDs scored by expiry (milliseconds, +inf:
// never); kids the IDs scored 0, in ID order (ranges of IDs: a new
// subscriber's acks and fetches find the few IDs after its start there
// instead of reading through the topic's past). Each
// new ID gets the next position, so positions follow the order in which
// scripts run: whoever sees position N sees every smaller one that will
// ever exist. Positions never fall behind the server's clock in
// microseconds (us; a batch starts at the later of the counter and the
// clock), so a counter made anew — its topic's keys expired — or rolled
// back by a failover that lost the latest writes starts above the
// positions given before (see the package doc, # Order and acks). An ID already indexed keeps its position. Expired IDs
// leave the three sets (up to 1000 a call, in the calls that cross a
// millionth of positions: see the sweep). The four keys expire together,
// slack milliseconds after their latest entry (never, if one never
// expires); that expiry is set again only when an entry outlives it (or
// kids has none yet: a topic written by a version before it), so a
// busy topic's keys get a new one once per slack, not on every call.
const luaFanoutIndex = `local function fanoutIndex(kidx, kseq, kexp, kids, a, top, now, us, slack)
	top = tonumber(top) or math.huge -- "+inf", "+Inf"
	local at = redis.call('PEXPIRETIME', kexp) -- -2: no key, -1: none
	local last = redis.call('GET', kseq)
	local seq = math.max(tonumber(last or '0'), us)
	local idx, exp, ids = {'NX'}, {}, {}
	for i = 1, #a, 2 do
		seq = seq + 1
		idx[#idx + 1] = string.format('%d', seq)
		idx[#idx + 1] = a[i]
		exp[#exp + 1] = a[i + 1]
		exp[#exp + 1] = a[i]
		ids[#ids + 1] = '0'
		ids[#ids + 1] = a[i]
	end
	redis.call('SET', kseq, string.format('%d', seq), 'KEEPTTL')
	redis.call('ZADD', kidx, unpack(idx))
	redis.call('ZADD', kexp, unpack(exp))
	redis.call('ZADD', kids, unpack(ids))
	-- The sweep of expired IDs runs when the position's millionth changes
	-- (about once a second of the clock on a busy topic; on every call
	-- to one written less often): readers skip expired entries, so they
	-- need not leave on every call.
	if not last or math.floor(tonumber(last) / 1000000) ~= math.floor(seq / 1000000) then
		local gone = redis.call('ZRANGE', kexp, '-inf', string.format('%d', now), 'BYSCORE', 'LIMIT', '0', '1000')
		if #gone > 0 then
			redis.call('ZREM', kexp, unpack(gone))
			redis.call('ZREM', kidx, unpack(gone))
			redis.call('ZREM', kids, unpack(gone))
		end
	end
	if last and at ~= -2 and (at == -1 or at >= top) and redis.call('PEXPIRETIME', kids) == at then return 1 end
	local high = redis.call('ZRANGE', kexp, '-1', '-1', 'WITHSCORES')
	if #high == 0 then
		redis.call('DEL', kseq, kids)
		return 0
	end
	for _, k in ipairs({kidx, kseq, kexp, kids}) do
		if high[2] == 'inf' then
			redis.call('PERSIST', k)
		else
			redis.call('PEXPIREAT', k, string.format('%d', tonumber(high[2]) + slack))
		end
	end
	return 1
end
`

// luaMicros is the server's time in microseconds (after luaNow).
const luaMicros = `local us = tonumber(t[1]) * 1000000 + tonumber(t[2])
`

// fanoutIndexScript is fanoutIndex of KEYS (index, counter, expiry set,
// ID set), the slack ARGV[1], top ARGV[2] and the pairs ARGV[3:].
var fanoutIndexScript = redis.NewScript(luaNow + luaMicros + luaFanoutIndex +
	`return fanoutIndex(KEYS[1], KEYS[2], KEYS[3], KEYS[4], {unpack(ARGV, 3)}, ARGV[2], now, us, tonumber(ARGV[1]))`)

// luaSettle is settle(kidx, kexp, kseq, kids, w, s, limit, budget, now,
// jump, extra): it reads a topic's fanout keys (index, expiry set,
// counter, ID set) for a client's watermark: from position w (exclusive)
// up, the entries that are not expired, each with "1" when it is due to
// the client (its ID is greater, byte-wise, than s, the client's earliest
// start; "" for any) or "0" when not. It stops after limit due entries or
// budget examined ones, and returns upto, {id, seq, due, …}, mode: every
// entry at or below position upto that is not in the list has expired
// (mode "") — or, with mode "j", has expired or is not due. upto is the
// topic's counter when the scan reached the end of the index — every
// position up to the counter exists already — else the last position
// examined (the last listed due one, with "j"). Pages start at what the
// limit needs (a client acking in order needs as many as it acks) and
// double up to 200: a page costs in proportion to its size, also when its
// first entries fill the limit.
//
// With jump set (the caller's base can take whatever the watermark
// passes: see advance), a start, and an ID set as complete as the index,
// when the IDs after s are fewer than half of the entries above w — a new
// subscriber on a topic with a past — it reads those IDs instead (the due
// entries, wherever they are) and the IDs of extra (the client's acks of
// messages that were not stored when acked), keeps those above w, and
// lists them in position order, mode "j": the past before the start is
// not read at all.
const luaSettle = `local function settleJump(kidx, kexp, kseq, kids, w, s, limit, budget, now, fresh, extra)
	if redis.call('ZCARD', kids) ~= redis.call('ZCARD', kidx) then return nil end
	local nd = redis.call('ZLEXCOUNT', kids, '(' .. s, '+')
	if nd > budget or 2 * nd >= redis.call('ZCOUNT', kidx, '(' .. w, '+inf') then return nil end
	local ids = redis.call('ZRANGE', kids, '(' .. s, '+', 'BYLEX')
	for _, id in ipairs(extra) do ids[#ids + 1] = id end
	local wn, list, seen = tonumber(w), {}, {}
	for i = 1, #ids, 1000 do
		local part = {unpack(ids, i, math.min(i + 999, #ids))}
		local ps = redis.call('ZMSCORE', kidx, unpack(part))
		local ex = fresh and {} or redis.call('ZMSCORE', kexp, unpack(part))
		for j = 1, #part do
			local p, e, id = ps[j], ex[j], part[j]
			if p and not seen[id] and tonumber(p) > wn and (not e or e == 'inf' or tonumber(e) > now) then
				seen[id] = true
				list[#list + 1] = {tonumber(p), id, p}
			end
		end
	end
	table.sort(list, function(x, y) return x[1] < y[1] end)
	local out, due, last = {}, 0, nil
	for _, e in ipairs(list) do
		local d = greater(e[2], s)
		out[#out + 1] = e[2]
		out[#out + 1] = e[3]
		out[#out + 1] = d and '1' or '0'
		if d then
			due = due + 1
			if due >= limit then last = e[3] break end
		end
	end
	return last or redis.call('GET', kseq) or w, out
end
local function settle(kidx, kexp, kseq, kids, w, s, limit, budget, now, jump, extra)
	local out, n, due, last, full = {}, 0, 0, w, false
	local from = '(' .. w
	-- When the earliest expiry in the topic is still to come, no entry has
	-- expired and their expiries need not be read (the sweep of expired
	-- entries runs about once a second: most scans are such).
	local first = redis.call('ZRANGE', kexp, '0', '0', 'WITHSCORES')
	local fresh = #first == 0 or first[2] == 'inf' or tonumber(first[2]) > now
	if jump and s ~= '' then
		local upto, list = settleJump(kidx, kexp, kseq, kids, w, s, limit, budget, now, fresh, extra)
		if upto then return upto, list, 'j' end
	end
	local size = math.min(limit + 1, 200)
	while not full do
		local page = redis.call('ZRANGE', kidx, from, '+inf', 'BYSCORE', 'LIMIT', '0', string.format('%d', size), 'WITHSCORES')
		if #page == 0 then break end
		local ids = {}
		for i = 1, #page, 2 do ids[#ids + 1] = page[i] end
		local ex = fresh and {} or redis.call('ZMSCORE', kexp, unpack(ids))
		for j = 1, #ids do
			n = n + 1
			last = page[2 * j]
			local e = ex[j]
			if not e or e == 'inf' or tonumber(e) > now then
				local d = s == '' or greater(ids[j], s)
				out[#out + 1] = ids[j]
				out[#out + 1] = last
				out[#out + 1] = d and '1' or '0'
				if d then
					due = due + 1
					if due >= limit then full = true break end
				end
			end
			if n >= budget then full = true break end
		end
		if #page < 2 * size then break end
		from = '(' .. last
		size = math.min(2 * size, 200)
	end
	if not full then last = redis.call('GET', kseq) or w end
	return last, out, ''
end
`

// settleScript is settle of KEYS (index, expiry set, counter, ID set) for
// the watermark ARGV[1], the start ARGV[2], the limit ARGV[3], the budget
// ARGV[4], jump ARGV[5] ("1": set) and extra ARGV[6:]; it returns {upto,
// {id, seq, due, …}, mode}.
var settleScript = redis.NewScript(luaNow + luaGreater + luaSettle + `
local upto, out, mode = settle(KEYS[1], KEYS[2], KEYS[3], KEYS[4], ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), now, ARGV[5] == '1', {unpack(ARGV, 6)})
return {upto, out, mode}
`)

// luaAdvance is advance(kw, kacks, kpassed, kbase, kkept, now, ttl, w0,
// upto, acks, cands, w, n, s, mode): it records a client's fanout acks of
// one topic and moves the client's watermark of it. Keys: the watermark
// (a position), the IDs acked above it (scored by position, or by minus
// the ack's time in milliseconds when the message was not stored yet),
// the IDs it passed without an ack because they were due to none of the
// client's subscriptions (all scored 0, so that a fetch reads those after
// its start by range, ZRANGE BYLEX), the base (a hash: from, to, start —
// the messages at positions in (from, to] with IDs at or before start,
// passed so, as one range) and the IDs in the base that the client acked
// (kept; scored 0). now is in milliseconds, ttl too (a decimal string,
// "0": none), w0 the watermark the scan started from, upto its end ("": no
// scan), acks {score, id, …}, cands {id, seq, due, …} and mode (see
// settle; seq a string or, from the one-Redis Acked, a number), w the
// watermark now (a number) and n the number of IDs in kacks, both read by
// the caller in this script, and s the client's earliest start. When the
// watermark is still w0 (or above), it moves up to the first due
// candidate above it that is not acked (or to upto) — never back. What it
// passes unacked that is not due goes to the base when the base can take
// it: s is not "" and the base ends at the watermark with start s, or
// there is none yet (it then starts at the watermark) — the base then ends
// at the new watermark, whatever it passes, so that it stays joined —;
// else each such ID is added to the passed set (and with mode "j", whose
// candidates are not all the entries, the watermark stays). Acks at or
// below the watermark are dropped (a passed ID acked leaves the passed
// set), except those of messages in the base, which are kept (and, when
// the watermark moves, those of messages not stored when acked whose IDs
// are at or before the base's start: they may be stored in it by now);
// acks of unstored messages older than the TTL are dropped too. The keys get the
// TTL (the passed set, the base and the kept set when they change: their
// messages have expired when they expire). A client acking in order has no
// acks recorded above its watermark (n = 0) and adds none: then the acks
// set is not touched at all. It returns the watermark.
const luaAdvance = `-- chunked calls cmd on key with the elements of l, 1000 at a time (Lua's
-- unpack has a limit).
local function chunked(cmd, key, l)
	for i = 1, #l, 1000 do
		redis.call(cmd, key, unpack(l, i, math.min(i + 999, #l)))
	end
end
local function expire(k, ttl)
	if ttl ~= '0' then redis.call('PEXPIRE', k, ttl) else redis.call('PERSIST', k) end
end
local function advance(kw, kacks, kpassed, kbase, kkept, now, ttl, w0, upto, acks, cands, w, n, s, mode)
	-- The watermark's move first, with these acks from the table (those
	-- below the new watermark need not be written to the acks set, and
	-- taken out again, at all).
	local mine = {}
	for i = 2, #acks, 2 do mine[acks[i]] = true end
	local b = redis.call('HMGET', kbase, 'from', 'to', 'start')
	local bfrom, bto, bstart = tonumber(b[1]), tonumber(b[2]), b[3]
	-- join: the base takes what the watermark passes.
	local join = s ~= '' and (not bto or (bto == w and bstart == s))
	-- settled: acked candidates that are not due, the watermark passes
	-- (id, seq, …).
	local nw, pass, settled, np = w, {}, {}, 0
	if upto ~= '' and tonumber(w0) <= w and (mode ~= 'j' or join) then
		nw = tonumber(upto)
		for i = 1, #cands, 3 do
			local q = tonumber(cands[i + 1])
			if q > w then
				if mine[cands[i]] or (n > 0 and redis.call('ZSCORE', kacks, cands[i])) then
					if cands[i + 2] == '0' then
						settled[#settled + 1] = cands[i]
						settled[#settled + 1] = q
					end
				elseif cands[i + 2] == '1' then
					nw = math.min(nw, q - 1)
					break
				elseif join then
					np = np + 1
				else
					pass[#pass + 1] = 0
					pass[#pass + 1] = cands[i]
				end
			end
		end
	end
	if nw < w then nw = w end
	if nw > w and join and (bto or np > 0 or mode == 'j') then
		if bto then
			redis.call('HSET', kbase, 'to', string.format('%d', nw))
		else
			bfrom, bstart = w, s
			redis.call('HSET', kbase, 'from', string.format('%d', w), 'to', string.format('%d', nw), 'start', s)
		end
		bto = nw
		expire(kbase, ttl)
	end
	-- keep: the acks of messages in the base (which the watermark passed
	-- or passes now) are kept.
	local keep = {}
	local function kept(id, q)
		if bto and q > bfrom and q <= bto and not greater(id, bstart) then
			keep[#keep + 1] = 0
			keep[#keep + 1] = id
		end
	end
	for i = 1, #settled, 2 do kept(settled[i], settled[i + 1]) end
	-- An ack of a message not stored when acked, with an ID at or before
	-- the base's start, is kept as well when the watermark moves: the
	-- message may be in what it passed (stored after the candidates were
	-- read, on a Cluster); a kept ack outside the base is never read.
	local function early(id)
		if bto and nw > w and not greater(id, bstart) then
			keep[#keep + 1] = 0
			keep[#keep + 1] = id
		end
	end
	local add, unpass = {}, {}
	for i = 1, #acks, 2 do
		local sc = tonumber(acks[i])
		if sc < 0 or sc > nw then
			add[#add + 1] = acks[i]
			add[#add + 1] = acks[i + 1]
			if sc < 0 then early(acks[i + 1]) end
		else
			if sc <= w then unpass[#unpass + 1] = acks[i + 1] end
			kept(acks[i + 1], sc)
		end
	end
	-- has: the acks set holds (or gets) IDs.
	local has = n > 0 or #add > 0
	if bto and n > 0 and nw > w then
		-- Acks recorded above the old watermark that the new one passes,
		-- and those of messages not stored when acked.
		local r = redis.call('ZRANGE', kacks, '(' .. string.format('%d', w), string.format('%d', nw), 'BYSCORE', 'WITHSCORES')
		for i = 1, #r, 2 do kept(r[i], tonumber(r[i + 1])) end
		for _, id in ipairs(redis.call('ZRANGE', kacks, '-inf', '(0', 'BYSCORE')) do early(id) end
	end
	chunked('ZADD', kacks, add)
	chunked('ZREM', kpassed, unpass)
	if #keep > 0 then
		chunked('ZADD', kkept, keep)
		expire(kkept, ttl)
	end
	local set = false
	if nw > w then
		local ns = string.format('%d', nw)
		setTTL(kw, ns, ttl)
		set = true
		if has then
			redis.call('ZREMRANGEBYSCORE', kacks, '0', ns)
			local rm = {}
			for i = 1, #cands, 3 do
				if tonumber(cands[i + 1]) <= nw then rm[#rm + 1] = cands[i] end
			end
			chunked('ZREM', kacks, rm)
		end
		chunked('ZADD', kpassed, pass)
		if #pass > 0 then expire(kpassed, ttl) end
		w = nw
	end
	if ttl ~= '0' then
		if has then
			redis.call('ZREMRANGEBYSCORE', kacks, '(' .. string.format('%d', ttl - now), '(0')
			redis.call('PEXPIRE', kacks, ttl)
		end
		if not set then redis.call('PEXPIRE', kw, ttl) end
	else
		if not set then redis.call('PERSIST', kw) end
		if has then redis.call('PERSIST', kacks) end
	end
	return string.format('%d', w)
end
`

// advanceScript is advance of KEYS (watermark, acks, passed, base, kept)
// and ARGV: now, the TTL, the watermark the scan started from, upto, the
// client's earliest start, the scan's mode, the number of acks, then
// score, id per ack, then id, seq, due per candidate.
var advanceScript = redis.NewScript(luaGreater + luaSetTTL + luaAdvance + `
local na = tonumber(ARGV[7])
local c0 = 8 + 2 * na
local acks, cands = {}, {}
for i = 8, c0 - 1 do acks[#acks + 1] = ARGV[i] end
for i = c0, #ARGV do cands[#cands + 1] = ARGV[i] end
local w = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = redis.call('ZCARD', KEYS[2])
return advance(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], acks, cands, w, n, ARGV[5], ARGV[6])
`)

// fetchIndexScript reads a part of a topic's fanout index for a fetch
// (KEYS: the index and the ID set) by a client with watermark ARGV[1] and
// start ARGV[2] ("": none): the IDs at positions above the watermark —
// read by position ("p": ARGV[4] entries in, ARGV[5] of them, "0": all),
// or, when the client has a start and the IDs after it are fewer than
// half of the entries above the watermark (a new subscriber on a topic
// with a past), in ID order from the start ("l": after the ID ARGV[4],
// "" for the start, ARGV[5] IDs of the set at most, kept when their
// position is above the watermark); ARGV[3] is the mode of the parts read
// before ("" for the first: chosen here). With a base, ARGV[6:8] (from,
// to, start; "" for none), it also returns the base's IDs after the
// client's start: at positions in (from, to], with IDs after ARGV[2] and
// at or before the base's start — read by ID or by position, whichever
// holds fewer. An ID set is used only when it has as many IDs as the
// index (a topic written by a version before it lacks some). It returns
// {mode, where the next part starts, "1" when there may be more, the IDs,
// the base's IDs}.
var fetchIndexScript = redis.NewScript(luaGreater + `
local w, lower, mode, from, count = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local full = nil
local function complete()
	if full == nil then full = redis.call('ZCARD', KEYS[2]) == redis.call('ZCARD', KEYS[1]) end
	return full
end
-- within adds to out the IDs of l at positions in (lo, hi].
local function within(l, lo, hi, out)
	for i = 1, #l, 1000 do
		local part = {unpack(l, i, math.min(i + 999, #l))}
		local ps = redis.call('ZMSCORE', KEYS[1], unpack(part))
		for j = 1, #part do
			local p = ps[j] and tonumber(ps[j])
			if p and p > lo and p <= hi then out[#out + 1] = part[j] end
		end
	end
	return out
end
if mode == '' then
	mode = 'p'
	if lower ~= '' and complete() then
		local nd = redis.call('ZLEXCOUNT', KEYS[2], '(' .. lower, '+')
		if 2 * nd < redis.call('ZCOUNT', KEYS[1], '(' .. w, '+inf') then mode = 'l' end
	end
end
local out, more, nxt = {}, '0', from
if mode == 'p' then
	local off = tonumber(from) or 0
	if count > 0 then
		out = redis.call('ZRANGE', KEYS[1], '(' .. w, '+inf', 'BYSCORE', 'LIMIT', string.format('%d', off), ARGV[5])
		if #out == count then more = '1' end
	else
		out = redis.call('ZRANGE', KEYS[1], '(' .. w, '+inf', 'BYSCORE')
	end
	nxt = string.format('%d', off + #out)
else
	local after = '(' .. (from ~= '' and from or lower)
	local page
	if count > 0 then
		page = redis.call('ZRANGE', KEYS[2], after, '+', 'BYLEX', 'LIMIT', '0', ARGV[5])
		if #page == count then more = '1' end
	else
		page = redis.call('ZRANGE', KEYS[2], after, '+', 'BYLEX')
	end
	if #page > 0 then nxt = page[#page] end
	within(page, tonumber(w), math.huge, out)
end
local base = {}
if ARGV[7] ~= '' then
	local bfrom, bto, bstart = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8]
	local lo = lower == '' and '-' or '(' .. lower
	if complete() and redis.call('ZLEXCOUNT', KEYS[2], lo, '[' .. bstart) < redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[6], ARGV[7]) then
		within(redis.call('ZRANGE', KEYS[2], lo, '[' .. bstart, 'BYLEX'), bfrom, bto, base)
	else
		for _, id in ipairs(redis.call('ZRANGE', KEYS[1], '(' .. ARGV[6], ARGV[7], 'BYSCORE')) do
			if (lower == '' or greater(id, lower)) and not greater(id, bstart) then base[#base + 1] = id end
		end
	end
end
return {mode, nxt, more, out, base}
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
redis.call('HSET', KEYS[1], 'claimed_by', ARGV[1], 'claim_until', string.format('%d', now + tonumber(ARGV[2])))
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

// luaCursor is cursor(k, id, ttl): it keeps the highest ID a client acked
// on a topic (k, the seeds' mqtt:acked:${clientid}:${topic}): it sets k to
// id if that is greater, byte-wise, with a TTL of ttl milliseconds (a
// decimal string, "0": none). It writes first and reads the old value
// with the same SET (one call), putting that back in the rare case it was greater (an ack
// of an older message after a newer one's).
const luaCursor = `local function cursor(k, id, ttl)
	local c = setTTL(k, id, ttl, 'GET')
	if c and greater(c, id) then setTTL(k, c, ttl) end
end
`

// cursorScript is cursor of KEYS[1], ARGV[1] and the TTL ARGV[2].
var cursorScript = redis.NewScript(luaGreater + luaSetTTL + luaCursor + `
cursor(KEYS[1], ARGV[1], ARGV[2])
return 1
`)

// ackedScript is an Acked on one Redis, in one call (see Store.Acked).
// KEYS are, per topic of the batch, its queue index, fanout index, expiry
// set, counter and ID set, and the client's watermark, acks, passed set,
// base, kept set and cursor of the topic (11 keys), then the acked
// messages' hashes, one per ack, in the order of the batch's topics and,
// within one, of their IDs in ARGV. ARGV[1] is the MessagePack (see
// packer) of {client, TTL (ms), now (ms), {per topic {the client's
// earliest start (see settle), then the acked IDs, each once, greatest
// first}}}. An ack whose ID has a position in its topic's fanout index is
// a fanout ack; for the others the message's hash tells: a queue message
// claimed by the client is deleted, and leaves its topic's queue index; a
// queue message claimed by another or by none is left; anything else is a
// fanout ack of a message not stored yet (or gone). A topic's fanout acks
// are recorded by advance after a settle scan of its topic, as the
// Cluster's three round trips do; here the scan comes first, and gives
// the positions of the acks it passes (of all of them when the client
// acks in order): only the others are looked up. The scan may jump (see
// settle) when the client's base can take what the watermark passes.
// (Positions are doubles, which Redis 7.0 formats with printf's %.17g and
// Lua parses back: a fifth of an ack's cost.)
var ackedScript = redis.NewScript(luaNow + luaGreater + luaSettle + luaSetTTL + luaAdvance + luaCursor + `
local b = cmsgpack.unpack(ARGV[1])
local client, ttl, anow = b[1], b[2], tonumber(b[3])
local pending = '-' .. b[3]
local topics = b[4]
local h = 11 * #topics -- the KEYS index of the last ack's hash seen
for t = 1, #topics do
	local tp = topics[t]
	local k = 11 * (t - 1)
	-- The scan from the watermark first: the positions of the acks it
	-- passes (all of them, for a client acking in order) need no look-up.
	local ws = redis.call('GET', KEYS[k + 6]) or '0'
	local n = redis.call('ZCARD', KEYS[k + 7])
	local limit = math.min(n + #tp, 5000)
	-- The scan may jump when the base can take what the watermark passes
	-- (as advance decides), with the client's acks of messages not
	-- stored when acked.
	local jump, extra = tp[1] ~= '', {}
	if jump then
		local bs = redis.call('HMGET', KEYS[k + 9], 'to', 'start')
		jump = not bs[1] or (tonumber(bs[1]) == tonumber(ws) and bs[2] == tp[1])
		if jump and n > 0 then extra = redis.call('ZRANGE', KEYS[k + 7], '-inf', '(0', 'BYSCORE') end
	end
	local upto, cands, mode = settle(KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5], ws, tp[1], limit, limit + 2000, now, jump, extra)
	local seqs, miss = {}, {}
	-- The candidates' positions as numbers, once (x + 0 parses with one
	-- strtod, tonumber with two), for the checks here and in advance.
	for i = 1, #cands, 3 do
		local q = cands[i + 1] + 0
		cands[i + 1] = q
		seqs[cands[i]] = q
	end
	for i = 2, #tp do
		if not seqs[tp[i]] then miss[#miss + 1] = tp[i] end
	end
	for i = 1, #miss, 1000 do
		local part = {unpack(miss, i, math.min(i + 999, #miss))}
		local got = redis.call('ZMSCORE', KEYS[k + 2], unpack(part))
		for j = 1, #part do seqs[part[j]] = got[j] end
	end
	local acks, hi = {}, nil
	for i = 2, #tp do
		h = h + 1
		local id, fan = tp[i], true
		local sc = seqs[id]
		if not sc or tonumber(sc) <= 0 then
			sc = pending
			local f = redis.call('HMGET', KEYS[h], 'mode', 'claimed_by')
			if f[1] == 'queue' then
				fan = false
				if f[2] == client then
					redis.call('DEL', KEYS[h])
					redis.call('ZREM', KEYS[k + 1], id)
				end
			end
		end
		if fan then
			hi = hi or id
			acks[#acks + 1] = sc
			acks[#acks + 1] = id
		end
	end
	if hi then
		cursor(KEYS[k + 11], hi, ttl)
		advance(KEYS[k + 6], KEYS[k + 7], KEYS[k + 8], KEYS[k + 9], KEYS[k + 10], anow, ttl, ws, upto, acks, cands, tonumber(ws), n, tp[1], mode)
	end
end
return h - 11 * #topics
`)

// replaceScript replaces the hash KEYS[1] by the field/value pairs in
// ARGV[2:], expiring at ARGV[1] (milliseconds; 0: never).
var replaceScript = redis.NewScript(`
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if ARGV[1] ~= '0' then redis.call('PEXPIREAT', KEYS[1], ARGV[1]) end
return 1
`)

// luaRegister is register(kexp, klex, mode, a, now): it adds topics to a
// registry (kexp scored by expiry, klex scored 0 for ranges by name; a:
// score, topic, …): with mode "gt" a topic's score only grows (the latest
// message of the topic), with "set" it is replaced (the retained message).
// A topic is in klex whenever it is in kexp (every script adds and drops
// both), so klex is written only when kexp got a new member. It then drops
// up to 1000 expired topics from both sets.
const luaRegister = `local function register(kexp, klex, mode, a, now)
	local added
	if mode == 'gt' then
		added = redis.call('ZADD', kexp, 'GT', unpack(a))
	else
		added = redis.call('ZADD', kexp, unpack(a))
	end
	if added > 0 then
		local lex = {}
		for i = 2, #a, 2 do
			lex[#lex + 1] = '0'
			lex[#lex + 1] = a[i]
		end
		redis.call('ZADD', klex, unpack(lex))
	end
	local gone = redis.call('ZRANGE', kexp, '-inf', string.format('%d', now), 'BYSCORE', 'LIMIT', '0', '1000')
	if #gone > 0 then
		redis.call('ZREM', kexp, unpack(gone))
		redis.call('ZREM', klex, unpack(gone))
	end
	return #gone
end
`

// registerScript is register of KEYS (the registry's two sets), the mode
// ARGV[1] and the pairs ARGV[2:].
var registerScript = redis.NewScript(luaNow + luaRegister +
	`return register(KEYS[1], KEYS[2], ARGV[1], {unpack(ARGV, 2)}, now)`)

// publishScript is a Publish (or a part of one) on one Redis, in one
// call: KEYS are the message hashes, then per group of the batch its keys
// (a queue topic's index; a fanout topic's index, counter, expiry set and
// ID set),
// then the fanout and the queue registries' two sets each. ARGV[1] is the
// MessagePack (see packer) of {messages, groups, registrations, notices,
// slack}:
// per message {expiry in Unix milliseconds ("0": none), field, value, …};
// per group {"q", {score, id, …}, max} or {"f", {id, score, …}, max}, max
// the latest of its scores; the fanout and the queue registrations {score,
// topic, …}; the notices {channel, node, …}, PUBLISHed last, so that the
// messages are readable when heard; the fanout index keys' slack (see
// luaFanoutIndex)
// (a message stored again, by a retry, is the same message: its fields are
// set again, its position kept).
var publishScript = redis.NewScript(luaNow + luaMicros + luaQueueIndex + luaFanoutIndex + luaRegister + `
local b = cmsgpack.unpack(ARGV[1])
local k = 0
for _, m in ipairs(b[1]) do
	k = k + 1
	redis.call('HSET', KEYS[k], unpack(m, 2))
	-- The expiry as the string it came in: a Lua number passed to
	-- redis.call is formatted with printf's %.17g.
	if m[1] ~= '0' then redis.call('PEXPIREAT', KEYS[k], m[1]) end
end
for _, g in ipairs(b[2]) do
	if g[1] == 'q' then
		queueIndex(KEYS[k + 1], g[2], now)
		k = k + 1
	else
		fanoutIndex(KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], g[2], g[3], now, us, tonumber(b[5]))
		k = k + 4
	end
end
for i = 1, 2 do
	if #b[3][i] > 0 then register(KEYS[k + 1], KEYS[k + 2], 'gt', b[3][i], now) end
	k = k + 2
end
local n = b[4]
for i = 1, #n, 2 do
	redis.call('PUBLISH', n[i], n[i + 1])
end
return #b[1]
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

// groupClaimScript claims or releases message IDs of a shared
// subscription group (KEYS: one key per ID, in the group's hash slot)
// for owner ARGV[1]. With a lease of ARGV[2] > 0 milliseconds it sets
// each key that is absent or holds the owner already to the owner, with
// the lease as its TTL (PX), and returns the (1-based) indexes of those
// keys; with ARGV[2] = 0 it deletes the keys that hold the owner and
// returns none.
var groupClaimScript = redis.NewScript(`
local owner, lease = ARGV[1], tonumber(ARGV[2])
local won = {}
for i = 1, #KEYS do
	local v = redis.call('GET', KEYS[i])
	if lease > 0 then
		if not v or v == owner then
			redis.call('SET', KEYS[i], owner, 'PX', lease)
			won[#won + 1] = i
		end
	elseif v == owner then
		redis.call('DEL', KEYS[i])
	end
end
return won
`)

var allScripts = []*redis.Script{queueIndexScript, fanoutIndexScript, publishScript, settleScript, advanceScript, fetchIndexScript, claimScript, ackScript, cursorScript, ackedScript, replaceScript, registerScript, unregisterScript, lookupScript, connectedScript, groupClaimScript}

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
