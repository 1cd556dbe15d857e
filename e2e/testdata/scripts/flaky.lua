-- Test hook: asks the recorder whether to fail. The recorder answers 500
-- while the test wants failures; the hook then raises an error and the
-- outbox retries it with backoff.
local http = require("http")
local config = require("config")

function on_event(event)
  local resp, err = http.post(config.get("recorder.url"), {
    id = event.id, type = event.type, subject = event.subject, attempt = event.attempt, data = event.data,
  })
  if not resp then error("recorder unreachable: " .. tostring(err)) end
  if resp.status ~= 200 then error("business system refused: HTTP " .. resp.status) end
end
