-- One atomic step for one canonical event: nonce check, dedupe check, decision, state update, stream append.
-- The RULES and TERMINAL tables are generated from the Python machine (statemachine/script.py) and
-- prepended to this file at start-up, so the rules live in one place.
--
-- KEYS[1] call hash   KEYS[2] transitions stream   KEYS[3] nonce mark (only when ARGV[4] is set)
-- ARGV: 1 trigger, 2 dedupe key, 3 replay flag, 4 nonce, 5 nonce ttl ms, 6 stream maxlen,
--       7 active ttl ms, 8 terminal ttl ms, 9 now ms, 10 source, 11 provider, 12 call id,
--       13 label, 14 event json
local call_key, stream_key = KEYS[1], KEYS[2]
local trigger, dedupe, replay, nonce = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local current = redis.call('HMGET', call_key, 'state', 'attempt', 'version', 'history')
local state = current[1] or 'new'
local attempt = tonumber(current[2] or '1')
local version = tonumber(current[3] or '0')
local history = current[4]

if nonce ~= '' then
  local seen = redis.call('GET', KEYS[3])
  if seen and seen ~= dedupe then
    return {'replayed_nonce', state, state, attempt, version, ''}
  end
  if not seen then
    redis.call('SET', KEYS[3], dedupe, 'PX', ARGV[5])
  end
end

local mark = 'd:' .. dedupe
if replay ~= '1' and redis.call('HEXISTS', call_key, mark) == 1 then
  return {'duplicate', state, state, attempt, version, ''}
end

local rule = RULES[trigger][state]
local outcome, destination = rule[1], rule[2]
local entry = ''
if outcome == 'applied' or outcome == 'annotation' then
  version = version + 1
  if rule[3] == 1 then attempt = attempt + 1 end
  local kind = 'transition'
  if outcome == 'annotation' then kind = 'annotation' end
  entry = redis.call('XADD', stream_key, 'MAXLEN', '~', ARGV[6], '*',
    'kind', kind, 'source', ARGV[10], 'provider', ARGV[11], 'call_id', ARGV[12],
    'from_state', state, 'to_state', destination, 'name', ARGV[13],
    'version', version, 'attempt', attempt, 'replay', replay, 'event', ARGV[14])
  if history then history = history .. ' ' .. entry else history = entry end
  if outcome == 'applied' then redis.call('HSET', call_key, 'state', destination) end
  redis.call('HSET', call_key, 'attempt', attempt, 'version', version, 'history', history,
    'provider', ARGV[11], 'updated_at', ARGV[9])
end
if dedupe ~= '' then redis.call('HSET', call_key, mark, version) end
if redis.call('EXISTS', call_key) == 1 then
  if TERMINAL[destination] then
    redis.call('PEXPIRE', call_key, ARGV[8])
  else
    redis.call('PEXPIRE', call_key, ARGV[7])
  end
end
return {outcome, state, destination, attempt, version, entry}
