-- Raises an error that is not a string.
return function(job)
    error({ code = 42 })
end
