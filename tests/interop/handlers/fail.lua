-- Fails every attempt with data.message (default "boom <attemptsMade>").
return function(job)
    error(job.data.message or ("boom " .. job.attempts_made))
end
