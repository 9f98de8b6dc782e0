-- A weighted mix of every app endpoint, valid and invalid JSON bodies.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

function init(args)
  common.use({
    {"GET", "/hello?name=ada", nil, 4},
    {"POST", "/echo", '{"user":"ada","tags":["a","b","c"],"n":42}', 6},
    {"POST", "/echo", '{"items":[1,2,3,4,5,6,7,8],"nested":{"deep":{"x":true}}}', 2},
    {"POST", "/echo", '{"broken": [1, 2,', 2},
    {"POST", "/session", '{"user":"ada"}', 2},
    {"POST", "/session", 'not json', 1},
    {"GET", "/session", nil, 1},
    {"GET", "/blob?size=4096", nil, 2},
    {"GET", "/report", nil, 2},
  })
end
