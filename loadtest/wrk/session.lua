-- POST /session (a new session each time) and GET /session.
package.path = debug.getinfo(1, "S").source:match("^@(.*/)") .. "?.lua;" .. package.path
local common = require("common")

function init(args)
  common.use({
    {"POST", "/session", '{"user":"ada"}', 3},
    {"POST", "/session", '{"user":"linus"}', 3},
    {"GET", "/session", nil, 1},
  })
end
