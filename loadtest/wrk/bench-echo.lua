-- The server benchmark's load: POST /echo with one small JSON document.
-- No response() callback, so wrk itself stays out of the way.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"user":"ada","tags":["a","b","c"],"n":42}'
