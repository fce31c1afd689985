-- json-validator (rex-behaviour §5.5), honouring `schema` (decisions.md §4).
local H = require("spec.support.engine_helper")

describe("json-validator", function()
    it("collects required/type/json problems and passes input with _validation", function()
        local out = H.node("json-validator", { requiredFields = { "a", "b" },
                                               fieldTypes = { a = "string", n = "number" } },
            { a = 5, n = "x", json = "{bad" })
        assert.equal(5, out.a)
        assert.is_false(out._validation.valid)
        assert.same({ 'Missing required field: "b"', 'Field "a" expected type "string", got "number"',
                      'Field "n" expected type "number", got "string"',
                      "Field 'json' contains invalid JSON string" }, out._validation.errors)
    end)

    it("fails in strict mode with the original message", function()
        local _, res = H.node("json-validator", { requiredFields = { "orderId" }, strict = true },
            { customer = "Bob" })
        assert.equal('Node "n" (json-validator) failed: JSON validation failed: Missing required field: "orderId"',
            res.errorMessage)
    end)

    it("honours schema (the original ignored it)", function()
        local schema = { type = "object", required = { "id", "items" },
                         properties = { id = { type = "integer", minimum = 1 },
                                        email = { type = "string", minLength = 3 },
                                        items = { type = "array", minItems = 1,
                                                  items = { type = "object",
                                                            required = { "sku" } } },
                                        kind = { enum = { "a", "b" } } },
                         additionalProperties = false }
        local out = H.node("json-validator", { schema = schema },
            { id = 0, email = "x", items = H.json.decode('[{"qty":1}]'), kind = "c", extra = true })
        -- properties are checked in key order
        assert.same({ "Schema: email is shorter than 3 characters", "Schema: id must be >= 1",
                      'Schema: items[0] is missing required property "sku"',
                      'Schema: kind must be one of ["a","b"]',
                      'Schema: value has unexpected property "extra"' }, out._validation.errors)
        local ok = H.node("json-validator", { schema = schema },
            { id = 3, items = H.json.decode('[{"sku":"s"}]') })
        assert.is_true(ok._validation.valid)
        local _, res = H.node("json-validator", { schema = { required = { "x" } }, strict = true }, {})
        assert.matches('JSON validation failed: Schema: value is missing required property "x"',
            res.errorMessage)
    end)

    it("validates its config", function()
        assert.same({ "JSONValidatorNode requires 'schema' object or 'requiredFields' array in config" },
            H.problems("json-validator", {}))
    end)
end)
