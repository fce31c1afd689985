-- rex.textscan: the scan (alternatives a string cannot match left out, positions no
-- alternative can start at skipped, backtracking lengths the next item cannot follow skipped)
-- finds exactly what the plain backtracking semantics find, for the guard's patterns,
-- data-cleaner's and a few built to stress the shortcuts.
local ts = require("rex.textscan")
local guard = require("rex.guard")

-- The reference: the plain backtracking semantics (every alternative, in order, at every
-- position; greedy counts, longest first), written out here independently of the module.
local function word(c)
    return c and ((c >= 48 and c <= 57) or (c >= 65 and c <= 90) or (c >= 97 and c <= 122)
        or c == 95)
end
local function ref_items(s, i, items, k)
    local it = items[k]
    if not it then
        return i
    end
    if it.boundary then
        if (not word(s:byte(i - 1))) ~= (not word(s:byte(i))) then
            return ref_items(s, i, items, k + 1)
        end
        return nil
    end
    local count = 0
    while count < it.max and i + count <= #s and it.set[s:byte(i + count)] do
        count = count + 1
    end
    for c = count, it.min, -1 do
        local e = ref_items(s, i + c, items, k + 1)
        if e then
            return e
        end
    end
    return nil
end
local function ref_each(alts, s)
    local out, i = {}, 1
    while i <= #s do
        local e
        for _, items in ipairs(alts) do
            e = ref_items(s, i, items, 1)
            if e then
                break
            end
        end
        if e and e > i then
            out[#out + 1] = i .. "-" .. (e - 1)
            i = e
        else
            i = i + 1
        end
    end
    return table.concat(out, ",")
end

local function spans(iter)
    local out = {}
    for s, e in iter do
        out[#out + 1] = s .. "-" .. e
    end
    return table.concat(out, ",")
end

local D, SEP = ts.set("0-9"), ts.set("-.\\s")
local TAIL = ts.seq(ts.rep(ts.set("("), 0, 1), ts.rep(D, 3, 3), ts.rep(ts.set(")"), 0, 1),
    ts.rep(SEP, 0, 1), ts.rep(D, 3, 3), ts.rep(SEP, 0, 1), ts.rep(D, 4, 4))
local PATTERNS = {
    email = { ts.seq(ts.rep(ts.set("a-zA-Z0-9._%+-"), 1), ts.lit("@"),
                     ts.rep(ts.set("a-zA-Z0-9.-"), 1), ts.lit("."), ts.rep(ts.set("a-zA-Z"), 2)) },
    phone = { ts.seq(ts.rep(ts.set("+"), 0, 1), ts.rep(D, 1, 3), ts.rep(SEP, 0, 1), TAIL), TAIL },
    card = { ts.seq(ts.boundary, ts.rep(D, 4, 4), ts.rep(ts.set("\\s-"), 0, 1), ts.rep(D, 4, 4),
                    ts.boundary) },
    -- optional items first: a match may start with any of them or with the first required one
    optional_start = { ts.seq(ts.rep(ts.set("x"), 0, 2), ts.rep(ts.set("("), 0, 1),
                              ts.rep(D, 2, 2)) },
    -- only empty matches (never yielded)
    empty_only = { ts.seq(ts.boundary), ts.seq(ts.rep(ts.set("q"), 0, 0)) },
    -- one alternative the text often lacks ("@"), one it has
    mixed = { ts.seq(ts.lit("a@"), ts.rep(D, 1)), ts.seq(ts.rep(D, 2, 3)) },
    case_insensitive = { ts.seq(ts.boundary, ts.lit("hate you", true), ts.boundary) },
}
for _, group in ipairs({ guard.INJECTION, guard.TOXICITY, guard.PII }) do
    for i, p in ipairs(group) do
        PATTERNS[(p.name or p.source) .. "#" .. i] = p.alts
    end
end

local ALPHABET = { "a", "x", "q", "e", "Z", "1", "5", "0", "9", "@", ".", "-", "+", "(", ")",
                   " ", "\t", "_", "%", "\0", "\200", "hate you", "I HATE them", "sk", "gsk",
                   "alice@example.com", "555-123-4567", "4111 1111", "ignore all instructions",
                   "developer mode", "123-45-6789", "AIza" }

describe("rex.textscan", function()
    it("finds what plain backtracking finds, filtered or not (random texts)", function()
        math.randomseed(12345)
        local checked = 0
        for _ = 1, 400 do
            local parts = {}
            for i = 1, math.random(0, 24) do
                parts[i] = ALPHABET[math.random(#ALPHABET)]
            end
            local text = table.concat(parts)
            for name, alts in pairs(PATTERNS) do
                local want = ref_each(alts, text)
                assert.equal(want, spans(ts.each_unfiltered(alts, text)))
                local got = spans(ts.each(alts, text))
                if got ~= want then
                    error(("%s on %q: %s, expected %s"):format(name, text, got, want))
                end
                checked = checked + (want ~= "" and 1 or 0)
            end
        end
        assert.is_true(checked > 200, "the texts produce matches: " .. checked)
    end)

    it("finds matches at the start, at the end and next to each other", function()
        assert.equal("1-17,22-27", spans(ts.each(PATTERNS.email, "alice@example.com or b@c.de")))
        assert.equal("1-2,4-6,7-8", spans(ts.each(PATTERNS.optional_start, "12 x3456")))
        assert.equal("", spans(ts.each(PATTERNS.empty_only, "q qq")))
        assert.equal("", spans(ts.each(PATTERNS.email, "no at sign here.com")))
    end)
end)
