-- ingest-knowledge-document: REX's job (rex-behaviour.md §6.7 with decisions.md §5): chunks and
-- embeds a knowledge_documents row into knowledge_chunks and recomputes its corpus's status. The
-- work lives in lua/rex/knowledge/pg.lua; a custom handler of the same name in REX_JOBS_PATH
-- replaces this one.
--
-- Errors: a bad payload, a missing document or content that cannot be chunked fail the job
-- without retries (no retry can change them); a database or provider failure fails the attempt
-- and BullMQ retries it (a later success recomputes the corpus status).
local rex = require("rex")
local store = require("rex.store")
local kpg = require("rex.knowledge.pg")

local function process(job)
    if not store.configured() then
        rex.unrecoverable("ingest-knowledge-document needs DATABASE_URL (PostgreSQL) and it is not "
            .. "set")
    end
    local ok, db = pcall(store.get)
    if not ok then
        error("PostgreSQL unavailable: " .. tostring(type(db) == "table" and db.message or db), 0)
    end
    local rok, res = pcall(kpg.ingest_job, db, job)
    if rok then
        return res
    end
    local msg = type(res) == "table" and tostring(res.message) or tostring(res)
    if type(res) == "table" and res.unrecoverable then
        rex.unrecoverable(msg)
    end
    error(msg, 0)
end

-- A job BullMQ fails without running it (the stalled limit): its document must not stay
-- `processing` forever.
local function failed_without_run(job, reason)
    if not store.configured() then
        return
    end
    local ok, done = pcall(function()
        return kpg.ingest_failed_without_run(store.get(), job, reason)
    end)
    if not ok then
        rex.log.error("Knowledge document left in progress: its job failed without running and "
            .. "PostgreSQL did not take the failure", { jobId = job.id, reason = reason,
            error = type(done) == "table" and done.message or tostring(done) })
    elseif done then
        rex.log.warn("Knowledge document failed: its job failed without running",
            { jobId = job.id, documentId = job.data.documentId, reason = reason })
    end
end

return { process = process, failed_without_run = failed_without_run }
