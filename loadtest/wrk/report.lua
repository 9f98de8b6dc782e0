-- GET /report of a few sizes.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

function init(args)
  common.use({
    {"GET", "/report", nil, 3},
    {"GET", "/report?rows=200", nil, 1},
  })
end
