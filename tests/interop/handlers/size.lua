-- Returns the length of data.blob.
return function(job)
    return { length = #job.data.blob }
end
