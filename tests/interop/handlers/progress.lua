-- Reports each value of data.values as progress and logs one line per value.
return function(job)
    for i, v in ipairs(job.data.values) do
        job:progress(v)
        job:log("step " .. i)
    end
    return { steps = #job.data.values }
end
