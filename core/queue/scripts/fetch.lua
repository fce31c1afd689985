-- fetch: moveToActive (protocol §4.2). ARGV: 1 now, 2 token, 3 lockDuration, 4 limiter max,
-- 5 limiter duration, 6 worker name. Returns the 4-element fetch reply
-- {job hash flat | 0, id | 0, rate-limit delay ms, next delayed ms}.
return (R.fetch(P, tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]))
