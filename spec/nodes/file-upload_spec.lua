-- file-upload (rex-behaviour §5.14).
local H = require("spec.support.engine_helper")

describe("file-upload", function()
    it("parses CSV with quotes and delimiter detection", function()
        local out = H.node("file-upload", { fileName = "a.csv", fileFormat = "csv",
            fileContent = 'name;note\n"Ann";"say ""hi"""\n\nBob;x\n' }, { ignored = true })
        assert.equal(2, out.rowCount)
        assert.same({ name = "Ann", note = 'say "hi"' }, out.data[1])
        assert.equal("2 rows, 2 columns", out.preview)
        assert.is_nil(out.ignored)
    end)

    it("decodes base64 JSON and reports parsedData", function()
        local out = H.node("file-upload", { fileFormat = "json",
            fileContent = "WzEsMiwzLHsiYSI6MX1d" }, {})
        assert.equal(4, out.rowCount)
        assert.equal("JSON array with 4 items", out.preview)
        local o2 = H.node("file-upload", { parsedData = H.json.decode('[{"a":1,"b":2}]') }, {})
        assert.equal("1 rows, 2 columns", o2.preview)
        assert.equal("unknown", o2.fileName)
        local _, res = H.node("file-upload", { fileFormat = "json", fileContent = "{nope" }, {})
        assert.equal('Node "n" (file-upload) failed: FileUploadNode: invalid JSON content', res.errorMessage)
    end)

    it("validates content and format", function()
        assert.same({ "FileUploadNode: no file uploaded. Please upload a file in the node config panel.",
                      'FileUploadNode: unsupported format "xls". Supported: csv, json, txt, pdf' },
            H.problems("file-upload", { fileFormat = "xls" }))
    end)
end)
