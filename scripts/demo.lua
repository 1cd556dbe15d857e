-- demo.lua: logs every event and counts it in kv. Used by the demo:
--   - events: ["*"]  function: on_event
local kv = require "kv"

function on_event(event)
  local total = kv.incr("events")
  local by_type = kv.incr("events:" .. event.type)
  kv.set("last_event", event.id)
  log.info("event received", {type = event.type, subject = event.subject, attempt = event.attempt,
    total = total, of_this_type = by_type})
  return {total = total, of_this_type = by_type}
end
