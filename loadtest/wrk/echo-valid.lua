-- POST /echo with valid JSON only: every answer should be a 200, so any
-- non-2xx or socket error is a dropped request (the zero-drop scenarios).
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

function init(args)
  common.use({
    {"POST", "/echo", '{"user":"ada","tags":["a","b","c"],"n":42}', 4},
    {"POST", "/echo", '{"items":[1,2,3,4,5,6,7,8],"nested":{"deep":{"x":true}}}', 3},
    {"POST", "/echo", '[{"k":"v"},{"k":"w"},{"k":"x"}]', 2},
  })
end
