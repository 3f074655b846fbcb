-- One atomic step for one canonical event: nonce check, dedupe check, decision, state update, stream append.
-- The decision comes from ARGV[15], the machine's decisions for this event's trigger from every state,
-- generated from the Python machine (statemachine/script.py: decision_row), so the rules live in one place.
--
-- KEYS[1] call hash   KEYS[2] transitions stream   KEYS[3...] the request's nonce marks (when ARGV[4] is set)
-- ARGV: 1 trigger, 2 dedupe key, 3 replay flag, 4 request fingerprint, 5 nonce ttl ms, 6 stream maxlen,
--       7 active ttl ms, 8 terminal ttl ms, 9 now ms, 10 source, 11 provider, 12 call id,
--       13 label, 14 event json, 15 decision row (" state=outcome/destination/new attempt/terminal ..."),
--       16 decision row for an event dated no later than the current attempt's end ('' when the same),
--       17 the event's time from the provider, unix ms ('' when unknown), 18 the dedupe key's mark field
--       (statemachine/store.py: dedupe_mark)
local call_key, stream_key = KEYS[1], KEYS[2]
local trigger, dedupe, replay, fingerprint = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

-- The dedupe mark is a field of the call's hash, read with the call's state: 'd:<key>', or for a key
-- longer than 62 bytes 'd#' and 16 hex digits of its SHA-1, which keeps a small hash compact (listpack:
-- every field at most 64 bytes) when MiniVoice's keys carry the call id and a timestamp.
local mark = ARGV[18]
local current = redis.call('HMGET', call_key, 'state', 'attempt', 'version', 'history', 'ended_at', mark)
local state = current[1] or 'new'
local attempt = tonumber(current[2] or '1')
local version = tonumber(current[3] or '0')
local history = current[4]

-- A nonce authenticates one request: spent here, before anything is decided, it holds that request's
-- fingerprint; the same request again (a retry) passes, any other request under it is a replay.
if fingerprint ~= '' then
  for i = 3, #KEYS do
    local seen = redis.call('GET', KEYS[i])
    if seen and seen ~= fingerprint then
      return {'replayed_nonce', state, state, attempt, version, ''}
    end
  end
  for i = 3, #KEYS do
    redis.call('SET', KEYS[i], fingerprint, 'PX', ARGV[5], 'NX')
  end
end

if replay ~= '1' and current[6] then
  return {'duplicate', state, state, attempt, version, ''}
end

-- A re-dial dated no later than the event that ended the attempt is the original creation, delivered late.
local row = ARGV[15]
if ARGV[16] ~= '' and ARGV[17] ~= '' and current[5] and tonumber(ARGV[17]) <= tonumber(current[5]) then
  row = ARGV[16]
end
local at = string.find(row, ' ' .. state .. '=', 1, true)
if not at then
  return redis.error_reply('no decision for trigger ' .. trigger .. ' from state ' .. state)
end
local outcome, destination, opens, terminal = string.match(row, '^ [%a_]+=([%a_]+)/([%a_]+)/(%d)/(%d)', at)
local entry = ''
local fields = {}
if outcome == 'applied' or outcome == 'annotation' then
  version = version + 1
  if opens == '1' then attempt = attempt + 1 end
  local kind = 'transition'
  if outcome == 'annotation' then kind = 'annotation' end
  entry = redis.call('XADD', stream_key, 'MAXLEN', '~', ARGV[6], '*',
    'kind', kind, 'source', ARGV[10], 'provider', ARGV[11], 'call_id', ARGV[12],
    'from_state', state, 'to_state', destination, 'name', ARGV[13],
    'version', version, 'attempt', attempt, 'replay', replay, 'event', ARGV[14])
  if history then history = history .. ' ' .. entry else history = entry end
  fields = {'attempt', attempt, 'version', version, 'history', history, 'provider', ARGV[11], 'updated_at', ARGV[9]}
  if outcome == 'applied' then
    fields[#fields + 1] = 'state'
    fields[#fields + 1] = destination
    if terminal == '1' and ARGV[17] ~= '' then
      fields[#fields + 1] = 'ended_at'
      fields[#fields + 1] = ARGV[17]
    end
  end
end
if dedupe ~= '' then
  fields[#fields + 1] = mark
  fields[#fields + 1] = version
end
if #fields > 0 then redis.call('HSET', call_key, unpack(fields)) end
if #fields > 0 or redis.call('EXISTS', call_key) == 1 then
  if terminal == '1' then
    redis.call('PEXPIRE', call_key, ARGV[8])
  else
    redis.call('PEXPIRE', call_key, ARGV[7])
  end
end
return {outcome, state, destination, attempt, version, entry}
