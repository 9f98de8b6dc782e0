-- POST /echo: valid JSON documents of a few shapes, and 1 in 10 invalid.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

function init(args)
  common.use({
    {"POST", "/echo", '{"user":"ada","tags":["a","b","c"],"n":42}', 4},
    {"POST", "/echo", '{"items":[1,2,3,4,5,6,7,8],"nested":{"deep":{"x":true}}}', 3},
    {"POST", "/echo", '[{"k":"v"},{"k":"w"},{"k":"x"}]', 2},
    {"POST", "/echo", '{"broken": [1, 2,', 1},
  })
end
