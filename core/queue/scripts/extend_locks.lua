-- extend_locks: batch lock renewal (protocol §4.4). ARGV: 1 lockDuration, then id, token pairs.
-- Returns the ids whose lock was missing or held by another token.
local lost = {}
for i = 2, #ARGV - 1, 2 do
    local id, token = ARGV[i], ARGV[i + 1]
    local lk = P .. id .. ":lock"
    if redis.call("GET", lk) == token then
        redis.call("SET", lk, token, "PX", ARGV[1])
        redis.call("SREM", P .. "stalled", id)
    else
        lost[#lost + 1] = id
    end
end
return lost
