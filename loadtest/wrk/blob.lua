-- GET /blob of a few sizes (16 KiB by default, up to 256 KiB).
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

function init(args)
  common.use({
    {"GET", "/blob", nil, 4},
    {"GET", "/blob?size=1000", nil, 4},
    {"GET", "/blob?size=262144", nil, 1},
  })
end
