-- Fails while attemptsMade < data.succeedAt, then returns the attempt number.
return function(job)
    if job.attempts_made < job.data.succeedAt then
        error("not yet " .. job.attempts_made)
    end
    return { succeededAt = job.attempts_made }
end
