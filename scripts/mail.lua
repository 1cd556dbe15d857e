-- mail.lua: sends e-mail through an HTTP mail API (Mailgun/Postmark-like
-- JSON endpoint). Used by shop.lua and treasury.lua:
--
--   local mail = require "mail"
--   mail.send{to = "ops@example.com", subject = "...", text = "...", key = event.id .. ":ops"}
--
-- Config (acquit.yaml, lua.config):
--   mail.url    endpoint receiving POST {from, to, subject, text} as JSON (required;
--               mail.api_url is accepted too)
--   mail.token  bearer token (optional)
--   mail.from   sender address (default "acquit@localhost")
local http = require "http"
local config = require "config"

local M = {}

-- send raises an error when the mail API cannot be reached or refuses the
-- message, so the hook fails and the outbox retries it. msg.key, if given,
-- is sent as Idempotency-Key so a retry does not send the mail twice when
-- the API honours it.
function M.send(msg)
  local url = config.get("mail.url") or config.get("mail.api_url")
  if not url then error("mail: config mail.url is not set", 2) end
  if type(msg.to) ~= "string" or msg.to == "" then error("mail: no recipient", 2) end
  local headers = {}
  local token = config.get("mail.token")
  if token then headers.Authorization = "Bearer " .. token end
  if msg.key then headers["Idempotency-Key"] = msg.key end
  local resp, err = http.post(url, {
    from = msg.from or config.get("mail.from", "acquit@localhost"),
    to = msg.to,
    subject = msg.subject or "(no subject)",
    text = msg.text or "",
  }, {headers = headers, timeout = 10})
  if not resp then error("mail: API unreachable: " .. err, 2) end
  if resp.status < 200 or resp.status >= 300 then
    error(string.format("mail: API answered %d: %s", resp.status, resp.body:sub(1, 200)), 2)
  end
  log.info("mail sent", {to = msg.to, subject = msg.subject})
  return true
end

-- money formats minor units: money(12950, "EUR") -> "129.50 EUR".
function M.money(minor, currency)
  minor = tonumber(minor) or 0
  local sign = minor < 0 and "-" or ""
  minor = math.abs(minor)
  return string.format("%s%d.%02d %s", sign, math.floor(minor / 100), minor % 100, currency or "")
end

return M
