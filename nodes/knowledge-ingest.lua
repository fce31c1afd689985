-- nodes/knowledge-ingest.lua: extracts documents from the input and ingests them through the
-- knowledge runtime; passes input and adds <outputKey> (default _knowledgeIngestion). Unlike the
-- original, document elements are read from contentText, content or text (decisions.md §5).
local util = require("rex.util")
local template = require("rex.engine.template")

local null, array = util.null, util.array
local SOURCE = { upload = true, inline = true, api = true }

local function stringify(v)
    if v == nil or v == null then
        return ""
    elseif type(v) == "string" then
        return util.trim(v)
    elseif type(v) == "number" or type(v) == "boolean" then
        return util.js_string(v)
    end
    return util.json_text(v) or ""
end

return {
    type = "knowledge-ingest",
    version = 1,
    schema = {
        documentsPath = { type = "any", doc = "dot path of an array of documents" },
        contentPath = { type = "any", doc = "dot path of the content" },
        contentTemplate = { type = "any", doc = "template of the content" },
        titlePath = { type = "any", doc = "dot path of the title" },
        titleTemplate = { type = "any", doc = "template of the title" },
        title = { type = "any", doc = "fallback title (default 'Runtime Document')" },
        sourceType = { type = "any", doc = "upload, inline (default) or api" },
        corpusId = { type = "any", doc = "target corpus" },
        scopeType = { type = "any", doc = "user, workflow or execution" },
        workflowIdScope = { type = "any", doc = "workflow id for scope workflow" },
        executionIdScope = { type = "any", doc = "execution id for scope execution" },
        required = { type = "any", doc = "fail when nothing is found (default false)" },
        outputKey = { type = "any", doc = "default _knowledgeIngestion" },
    },
    validate = function(config)
        local errs = {}
        if config.scopeType == "workflow" and not util.non_empty_string(config.workflowIdScope) then
            errs[#errs + 1] = "workflowIdScope is required when scopeType is workflow"
        end
        if config.scopeType == "execution" and not util.non_empty_string(config.executionIdScope) then
            errs[#errs + 1] = "executionIdScope is required when scopeType is execution"
        end
        if config.sourceType ~= nil and not SOURCE[config.sourceType] then
            errs[#errs + 1] = "sourceType must be one of: upload, inline, api"
        end
        if util.bool_like(config.required, false) and not util.non_empty_string(config.documentsPath)
            and not util.non_empty_string(config.contentPath)
            and not util.non_empty_string(config.contentTemplate) then
            errs[#errs + 1] = "required=true but no document extractor is configured "
                .. "(documentsPath/contentPath/contentTemplate)"
        end
        return #errs == 0 or nil, errs
    end,
    execute = function(ctx, input, config)
        if not ctx:has_ingestion() then
            return nil, "KnowledgeIngestNode requires ingestKnowledge runtime support"
        end
        local fallback = util.non_empty_string(config.title) or "Runtime Document"
        local source = SOURCE[config.sourceType] and config.sourceType or "inline"
        local output_key = util.non_empty_string(config.outputKey) and config.outputKey
            or "_knowledgeIngestion"
        local docs = {}
        local dp = util.non_empty_string(config.documentsPath)
        local list = dp and util.get_path(input, dp) or nil
        if util.is_array(list) then
            for i, el in ipairs(list) do
                if util.is_record(el) then
                    local content = stringify(el.contentText)
                    if content == "" then
                        content = stringify(el.content)
                    end
                    if content == "" then
                        content = stringify(el.text)
                    end
                    if content ~= "" then
                        local meta = el.metadata
                        if not util.is_record(meta) then
                            meta = { sourceIndex = i - 1,
                                     extractedFrom = util.truthy(input.fileName) and "file-upload"
                                         or (util.truthy(input.documents) and "documents-path"
                                             or "runtime-input") }
                        end
                        docs[#docs + 1] = {
                            title = util.non_empty_string(el.title) or util.non_empty_string(el.name)
                                or (fallback .. " #" .. i),
                            contentText = content,
                            sourceType = SOURCE[el.sourceType] and el.sourceType or source,
                            metadata = meta,
                        }
                    end
                else
                    local content = stringify(el)
                    if content ~= "" then
                        docs[#docs + 1] = { title = fallback .. " #" .. i, contentText = content,
                                            sourceType = source,
                                            metadata = { sourceIndex = i - 1,
                                                         extractedFrom = util.truthy(input.fileName)
                                                             and "file-upload"
                                                             or (util.truthy(input.documents)
                                                                 and "documents-path"
                                                                 or "runtime-input") } }
                    end
                end
            end
        end
        if #docs == 0 then
            local content = ""
            local cp = util.non_empty_string(config.contentPath)
            if cp then
                content = stringify(util.get_path(input, cp))
            end
            if content == "" and util.non_empty_string(config.contentTemplate) then
                content = util.trim(template.knowledge_ingest(config.contentTemplate, input))
            end
            if content ~= "" then
                local title = ""
                local tp = util.non_empty_string(config.titlePath)
                if tp then
                    title = stringify(util.get_path(input, tp))
                end
                if title == "" and util.non_empty_string(config.titleTemplate) then
                    title = util.trim(template.knowledge_ingest(config.titleTemplate, input))
                end
                if title == "" then
                    title = fallback
                end
                docs[1] = { title = title, contentText = content, sourceType = source,
                            metadata = {} }
            end
        end
        local out = util.shallow_copy(input)
        if #docs == 0 then
            if util.bool_like(config.required, false) then
                return nil, "KnowledgeIngestNode: no ingestable documents found in input"
            end
            out[output_key] = { skipped = true, reason = "No documents found in configured paths/templates",
                                ingestedCount = 0, ingestedAt = util.now_iso() }
            return out
        end
        local results = array()
        local scope = config.scopeType
        for _, d in ipairs(docs) do
            local req = { title = d.title, contentText = d.contentText, sourceType = d.sourceType,
                          metadata = d.metadata, corpusId = util.non_empty_string(config.corpusId),
                          scopeType = scope }
            if scope == "workflow" then
                req.workflowIdScope = util.non_empty_string(config.workflowIdScope) or ctx.workflow_id
            elseif scope == "execution" then
                req.executionIdScope = util.non_empty_string(config.executionIdScope)
                    or ctx.execution_id
            end
            local res = ctx:ingest_knowledge(req)
            if type(res) ~= "table" then
                return nil, "Knowledge ingestion returned no result"
            end
            results[#results + 1] = { corpusId = res.corpusId, documentId = res.documentId,
                                      chunkCount = res.chunkCount, status = res.status,
                                      title = d.title }
        end
        local first = results[1].corpusId
        if first ~= nil then
            ctx:set_memory("knowledge.activeCorpusId", first)
        end
        out[output_key] = { ingestedCount = #results, corpusId = first == nil and null or first,
                            documents = results, ingestedAt = util.now_iso() }
        return out, first ~= nil and { contextPatch = { memory = {
            ["knowledge.activeCorpusId"] = first } } } or nil
    end,
}
