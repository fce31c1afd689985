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
local journal = require("rex.journal")
local kpg = require("rex.knowledge.pg")

local type, tostring, pcall, error = type, tostring, pcall, error
local log = rex.log

-- A job that fails for good (its last attempt, an unrecoverable error, or BullMQ failing it
-- without running it) must not leave its document `pending` or `processing` forever: the
-- document is marked failed here, and when PostgreSQL does not answer the update goes to the
-- journal (rex.journal) and is applied by a later ingestion job or by the worker's idle() call:
--
--   <prefix>:<queue>:rex:pending-final-documents   hash: documentId -> JSON {corpusId, error,
--                                                  jobId, at (ms since the epoch)}
local JOURNAL = "pending-final-documents"

local is_uuid = require("rex.util").is_uuid

local function db_error(e)
    return type(e) == "table" and tostring(e.message) or tostring(e)
end

local function end_document(job, message, why)
    local d = type(job.data) == "table" and job.data or {}
    local cid, did = d.corpusId, d.documentId
    if not (is_uuid(cid) and is_uuid(did)) or not store.configured() then
        return
    end
    local ok, changed = pcall(function()
        return kpg.fail_in_progress(store.get(), cid, did, message)
    end)
    if ok then
        if changed then
            log.warn("Knowledge document failed: " .. why, { jobId = job.id, documentId = did,
                                                            error = message })
        end
        return
    end
    local put, err = journal.put(JOURNAL, did, { corpusId = cid, jobId = job.id,
        at = rex.now_ms(), error = message .. " (recorded while PostgreSQL was unreachable)" })
    if put then
        log.warn("Knowledge document failure kept in Redis until PostgreSQL answers",
            { jobId = job.id, documentId = did, error = db_error(changed) })
    else
        log.error("Knowledge document left in progress: neither PostgreSQL nor Redis took its "
            .. "failure", { jobId = job.id, documentId = did, error = db_error(changed),
                            redisError = err })
    end
end

-- Applies the journal through db. Returns whether it all went through.
local function apply_journal(db)
    local complete, err = journal.each(JOURNAL, function(did, e)
        if not (is_uuid(did) and e and is_uuid(e.corpusId) and type(e.error) == "string") then
            log.warn("Dropping an invalid journal entry", { journal = journal.key(JOURNAL),
                                                          field = did })
            return true
        end
        local ok, changed = pcall(kpg.fail_in_progress, db, e.corpusId, did, e.error, e.at)
        if not ok then
            log.warn("Cannot apply a pending document failure yet", { documentId = did,
                                                                     error = db_error(changed) })
            return false
        end
        log.info(changed and "Pending failure applied to knowledge document"
            or "Pending failure dropped; the knowledge document has moved on",
            { documentId = did, jobId = e.jobId })
        return true
    end)
    if err and store.first_time("document-journal-read") then
        log.warn("Cannot read the document journal", { journal = journal.key(JOURNAL),
                                                      error = err })
    end
    return complete
end

-- applied by every ingestion job, at most once a second per worker thread
local apply_journal_throttled = journal.throttled(apply_journal)

local function process(job)
    if not store.configured() then
        rex.unrecoverable("ingest-knowledge-document needs DATABASE_URL (PostgreSQL) and it is not "
            .. "set")
    end
    local ok, db = pcall(store.get)
    local rok, res
    if ok then
        apply_journal_throttled(db)
        rok, res = pcall(kpg.ingest_job, db, job)
        if rok then
            return res
        end
    else
        res = { message = "PostgreSQL unavailable: " .. db_error(db) }
    end
    local msg = type(res) == "table" and tostring(res.message) or tostring(res)
    local unrecoverable = type(res) == "table" and res.unrecoverable
    if unrecoverable or journal.is_last_attempt(job) then
        end_document(job, msg, "its job failed for good")
    end
    if unrecoverable then
        rex.unrecoverable(msg)
    end
    error(msg, 0)
end

-- BullMQ failed the job without running it (the stalled limit, the started-attempts limit).
local function failed_without_run(job, reason)
    end_document(job, "Ingestion failed: " .. tostring(reason), "its job failed without running")
end

-- Every REX_IDLE_INTERVAL_MS (rex.worker): a journal written while PostgreSQL was down is
-- applied without waiting for the next ingestion job (one HLEN when it is empty).
local function idle()
    if not store.configured() then
        return
    end
    local n = journal.length(JOURNAL)
    if n and n > 0 then
        local ok, db = pcall(store.get)
        if ok then
            apply_journal(db)
        end
    end
end

return { process = process, failed_without_run = failed_without_run, idle = idle }
