-- GET /hello with a few names.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

function init(args)
  common.use({
    {"GET", "/hello?name=ada"},
    {"GET", "/hello?name=grace"},
    {"GET", "/hello"},
  })
end
