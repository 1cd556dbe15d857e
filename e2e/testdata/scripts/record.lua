-- Test hook: reports every delivery to the test's recorder over HTTP.
-- Fails (and is retried) unless the recorder answers 200.
local http = require("http")
local config = require("config")

function on_event(event)
  local resp, err = http.post(config.get("recorder.url"), {
    id = event.id, type = event.type, subject = event.subject,
    attempt = event.attempt, data = event.data,
  })
  if not resp then error("recorder unreachable: " .. tostring(err)) end
  if resp.status ~= 200 then error("recorder answered " .. resp.status) end
  return "ok"
end
