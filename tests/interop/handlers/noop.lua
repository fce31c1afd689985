-- Does nothing (benchmarks).
return function() end
