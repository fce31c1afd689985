-- Returns the job's data and the attempt number.
return function(job)
    return { echoed = job.data, attemptsMade = job.attempts_made, name = job.name }
end
