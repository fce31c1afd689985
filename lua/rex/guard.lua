-- rex.guard: the prompt-injection, toxicity and PII detectors of the input-guard and
-- output-guard nodes (the original's security.ts patterns, as fixed matchers).
local ts = require("rex.textscan")

local M = {}

local lit, seq, rep, set, B = ts.lit, ts.seq, ts.rep, ts.set, ts.boundary

-- Expands "a (b|c) d" phrase alternatives into literal sequences (case-insensitive, \b...\b).
local function phrases(list)
    local alts = {}
    for _, p in ipairs(list) do
        alts[#alts + 1] = seq(B, lit(p, true), B)
    end
    return alts
end

local function expand(prefix, opts, suffix)
    local out = {}
    for _, o in ipairs(opts) do
        out[#out + 1] = prefix .. o .. suffix
    end
    return out
end

local function cat(...)
    local out = {}
    for i = 1, select("#", ...) do
        for _, x in ipairs((select(i, ...))) do
            out[#out + 1] = x
        end
    end
    return out
end

M.INJECTION = {
    { source = "\\bignore (all|previous|prior) instructions\\b",
      alts = phrases(expand("ignore ", { "all", "previous", "prior" }, " instructions")) },
    { source = "\\b(disregard|bypass) (safety|guardrails|policy)\\b",
      alts = phrases(cat(expand("disregard ", { "safety", "guardrails", "policy" }, ""),
                         expand("bypass ", { "safety", "guardrails", "policy" }, ""))) },
    { source = "\\b(reveal|show) (system prompt|hidden prompt)\\b",
      alts = phrases(cat(expand("reveal ", { "system prompt", "hidden prompt" }, ""),
                         expand("show ", { "system prompt", "hidden prompt" }, ""))) },
    { source = "\\bdeveloper mode\\b", alts = phrases({ "developer mode" }) },
    { source = "\\bdo anything now\\b", alts = phrases({ "do anything now" }) },
}

M.TOXICITY = {
    { source = "\\bkill yourself\\b", alts = phrases({ "kill yourself" }) },
    { source = "\\bI hate (you|them)\\b", alts = phrases({ "I hate you", "I hate them" }) },
    { source = "\\b(?:racial slur|nazi)\\b", alts = phrases({ "racial slur", "nazi" }) },
}

local D = set("0-9")
local WS = set("\\s")
local SEP = set("-.\\s")
-- (?:\(?\d{3}\)?[-.\s]?)
local GROUP = seq(rep(set("("), 0, 1), rep(D, 3, 3), rep(set(")"), 0, 1), rep(SEP, 0, 1))

M.PII = {
    { name = "email", label = "[REDACTED_EMAIL]",
      alts = { seq(B, rep(set("A-Z0-9._%+-", true), 1), lit("@"), rep(set("A-Z0-9.-", true), 1),
                   lit("."), rep(set("A-Z", true), 2), B) } },
    { name = "phone", label = "[REDACTED_PHONE]",
      alts = { seq(B, rep(set("+"), 0, 1), rep(D, 1, 2), rep(WS, 0, 1), GROUP, GROUP, rep(D, 4, 4), B),
               seq(B, GROUP, GROUP, rep(D, 4, 4), B) } },
    { name = "ssn", label = "[REDACTED_SSN]",
      alts = { seq(B, rep(D, 3, 3), lit("-"), rep(D, 2, 2), lit("-"), rep(D, 4, 4), B) } },
    { name = "api_key", label = "[REDACTED_API_KEY]",
      alts = { seq(B, lit("sk"), rep(set("A-Za-z0-9_-"), 16), B),
               seq(B, lit("gsk"), rep(set("A-Za-z0-9_-"), 16), B),
               seq(B, lit("AIza"), rep(set("A-Za-z0-9_-"), 16), B) } },
}

-- First occurrence per pattern: list of {pattern = source, match = text}.
function M.first_matches(patterns, text)
    local out = require("rex.util").array()
    for _, p in ipairs(patterns) do
        local s, e = ts.first(p.alts, text)
        if s then
            out[#out + 1] = { pattern = p.source, match = text:sub(s, e) }
        end
    end
    return out
end

-- Every PII occurrence, in pattern order: {pattern = name, match = text}.
function M.pii_matches(text)
    local out = require("rex.util").array()
    for _, p in ipairs(M.PII) do
        for s, e in ts.each(p.alts, text) do
            out[#out + 1] = { pattern = p.name, match = text:sub(s, e) }
        end
    end
    return out
end

-- Replaces every PII occurrence, pattern by pattern (email, phone, ssn, api_key).
function M.redact(text)
    for _, p in ipairs(M.PII) do
        local parts, last = {}, 1
        for s, e in ts.each(p.alts, text) do
            parts[#parts + 1] = text:sub(last, s - 1)
            parts[#parts + 1] = p.label
            last = e + 1
        end
        if #parts > 0 then
            parts[#parts + 1] = text:sub(last)
            text = table.concat(parts)
        end
    end
    return text
end

return M
