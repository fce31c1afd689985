-- rex.engine.graph: DAG validation, Kahn order and waves exactly as the original
-- (rex-behaviour §4.2, §4.3).
local util = require("rex.util")

local type, tostring = type, tostring
local js_string = util.js_string

local graph = {}

local function id_text(v)
    if type(v) == "string" then
        return v
    end
    return js_string(v)
end

-- Returns { ids = {unique ids in first-appearance order}, by_id = {id -> last node},
-- order = {ids in Kahn order} or nil, errors = {messages}, parents = {id -> {edges}},
-- children = {id -> {edges}} }.
function graph.analyze(nodes, edges)
    local ids, by_id, seen = {}, {}, {}
    for i = 1, #nodes do
        local n = nodes[i]
        local id = n.id
        if not seen[id] then
            seen[id] = true
            ids[#ids + 1] = id
        end
        by_id[id] = n
    end
    local errors = {}
    local valid_edges = {}
    for i = 1, #edges do
        local e = edges[i]
        local src, dst = e.source, e.target
        if src == nil or not seen[src] then
            errors[#errors + 1] = ('Edge "%s" references unknown source node "%s"'):format(
                id_text(e.id), id_text(src))
        elseif dst == nil or not seen[dst] then
            errors[#errors + 1] = ('Edge "%s" references unknown target node "%s"'):format(
                id_text(e.id), id_text(dst))
        elseif src == dst then
            errors[#errors + 1] = ('Edge "%s" creates a self-loop on node "%s"'):format(
                id_text(e.id), id_text(src))
        else
            valid_edges[#valid_edges + 1] = e
        end
    end
    local parents, children = {}, {}
    for i = 1, #ids do
        parents[ids[i]] = {}
        children[ids[i]] = {}
    end
    for i = 1, #edges do
        local e = edges[i]
        if seen[e.target] then
            local p = parents[e.target]
            p[#p + 1] = e
        end
        if seen[e.source] then
            local c = children[e.source]
            c[#c + 1] = e
        end
    end
    local result = { ids = ids, by_id = by_id, errors = errors, parents = parents,
                     children = children }
    if #errors > 0 then
        return result
    end
    local indeg = {}
    for i = 1, #ids do
        indeg[ids[i]] = 0
    end
    for i = 1, #valid_edges do
        local t = valid_edges[i].target
        indeg[t] = indeg[t] + 1
    end
    local queue, head = {}, 1
    for i = 1, #ids do
        if indeg[ids[i]] == 0 then
            queue[#queue + 1] = ids[i]
        end
    end
    local order = {}
    while head <= #queue do
        local id = queue[head]
        head = head + 1
        order[#order + 1] = id
        local outs = children[id]
        for j = 1, #outs do
            local t = outs[j].target
            indeg[t] = indeg[t] - 1
            if indeg[t] == 0 then
                queue[#queue + 1] = t
            end
        end
    end
    if #order < #ids then
        errors[#errors + 1] =
            "Workflow contains a cycle. Workflows must be directed acyclic graphs (DAG)."
        return result
    end
    result.order = order
    return result
end

-- Waves: level 0 without parents, else 1 + max(parent level); grouped by level in order.
function graph.waves(order, parents)
    local level, max_level = {}, 0
    for i = 1, #order do
        local id = order[i]
        local lv = 0
        local ps = parents[id]
        for j = 1, #ps do
            local pl = level[ps[j].source]
            if pl and pl + 1 > lv then
                lv = pl + 1
            end
        end
        level[id] = lv
        if lv > max_level then
            max_level = lv
        end
    end
    local groups = {}
    for lv = 0, max_level do
        groups[lv + 1] = {}
    end
    for i = 1, #order do
        local g = groups[level[order[i]] + 1]
        g[#g + 1] = order[i]
    end
    local waves = {}
    for i = 1, #groups do
        if #groups[i] > 0 then
            waves[#waves + 1] = groups[i]
        end
    end
    return waves, level
end

graph.id_text = id_text
local _ = tostring

return graph
