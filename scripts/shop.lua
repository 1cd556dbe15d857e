-- shop.lua: tells the shop about card payment outcomes.
--
-- Bindings (acquit.yaml):
--   - events: [payment.accepted]                               function: on_accepted
--   - events: [payment.refused, payment.cancelled]             function: on_failed
--   - events: [payment.unknown, payment.conflict, payment.mismatch]  function: on_alert
--
-- Config: shop.url (base URL of the shop API), shop.token (bearer, optional),
-- mail.alert_to (who hears about payments needing a human).
--
-- Every call to the shop carries the event id as Idempotency-Key: the outbox
-- delivers at least once, so the shop must treat a repeated key as done.
local http = require "http"
local config = require "config"
local mail = require "mail"

-- order_path validates the order id before it goes into a URL.
local function order_path(payment)
  local id = payment and payment.order_id
  if type(id) ~= "string" or not id:match("^[%w%-_]+$") or #id > 64 then
    error("payment has no usable order_id: " .. tostring(id))
  end
  return "/orders/" .. http.escape(id)
end

local function call_shop(event, path, body)
  local base = config.get("shop.url")
  if not base then error("config shop.url is not set") end
  local headers = {["Idempotency-Key"] = event.id}
  local token = config.get("shop.token")
  if token then headers.Authorization = "Bearer " .. token end
  local resp, err = http.post(base .. path, body, {headers = headers, timeout = 10})
  if not resp then error("shop API unreachable: " .. err) end
  if resp.status == 409 then
    -- The shop already processed this idempotency key.
    log.info("shop already had this event", {path = path})
    return
  end
  if resp.status < 200 or resp.status >= 300 then
    error(string.format("shop API answered %d on %s: %s", resp.status, path, resp.body:sub(1, 200)))
  end
  log.info("shop notified", {path = path, status = resp.status})
end

-- payment.accepted: mark the order paid.
function on_accepted(event)
  local d = event.data
  local p = d.payment
  call_shop(event, order_path(p) .. "/paid", {
    event_id = event.id,
    reference = p.reference,
    amount = p.amount,
    currency = p.currency,
    authorisation_id = d.authorisation_id or p.authorisation_id,
    channel = d.channel,
  })
end

-- payment.refused / payment.cancelled: mark the order failed.
function on_failed(event)
  local d = event.data
  local p = d.payment
  call_shop(event, order_path(p) .. "/failed", {
    event_id = event.id,
    reference = p.reference,
    reason = event.type == "payment.cancelled" and "cancelled" or "refused",
    response_code = d.response_code or p.response_code,
    explanation = d.explanation,
  })
end

-- payment.unknown / conflict / mismatch: a human must look. Mail the alert
-- address and tell the shop to hold the order.
function on_alert(event)
  local d = event.data
  local p = d.payment or {}
  local what = event.type:gsub("^payment%.", "")
  mail.send{
    to = config.get("mail.alert_to") or error("config mail.alert_to is not set"),
    subject = string.format("[acquit] payment %s needs attention: %s", p.reference or "?", what),
    text = string.format("Payment %s (order %s, %s) is %s.\nReason: %s\nState: %s, channel: %s\nEvent: %s",
      p.reference or "?", p.order_id or "?", mail.money(p.amount, p.currency), what,
      d.reason or "-", p.state or "?", d.channel or "?", event.id),
    key = event.id .. ":alert",
  }
  if p.order_id then
    call_shop(event, order_path(p) .. "/hold", {event_id = event.id, reference = p.reference, reason = what, detail = d.reason})
  end
end
