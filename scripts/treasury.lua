-- treasury.lua: EBICS transmission outcomes go to the ERP and the treasurer.
--
-- Bindings (acquit.yaml):
--   - events: [transmission.accepted]           function: on_accepted
--   - events: [transmission.partially_accepted] function: on_partial
--   - events: [transmission.rejected]           function: on_rejected
--   - events: [transmission.unacknowledged]     function: on_unacknowledged
--   - events: [transmission.unsent]             function: on_unsent
--   - events: [ack.unmatched]                   function: on_unmatched
--
-- Config: treasury.erp_url (POST endpoint of the ERP), treasury.erp_token,
-- treasury.email (the treasurer), mail.* (see mail.lua).
--
-- A retried event must not mail twice: each step is recorded in kv under the
-- event id once done, and skipped on the next attempt.
local http = require "http"
local config = require "config"
local kv = require "kv"
local mail = require "mail"

local DONE_TTL = 60 * 24 * 3600 -- remember finished steps for 60 days

local function once(event, step, fn)
  local key = "done:" .. event.id .. ":" .. step
  if kv.get(key) then
    log.debug("step already done", {step = step})
    return
  end
  fn()
  kv.set(key, "1", DONE_TTL)
end

local function post_erp(event, body)
  local url = config.get("treasury.erp_url")
  if not url then error("config treasury.erp_url is not set") end
  local headers = {["Idempotency-Key"] = event.id}
  local token = config.get("treasury.erp_token")
  if token then headers.Authorization = "Bearer " .. token end
  body.event_id = event.id
  body.event_type = event.type
  local resp, err = http.post(url, body, {headers = headers, timeout = 15})
  if not resp then error("ERP unreachable: " .. err) end
  if resp.status < 200 or resp.status >= 300 then
    error(string.format("ERP answered %d: %s", resp.status, resp.body:sub(1, 200)))
  end
end

local function treasurer()
  return config.get("treasury.email") or error("config treasury.email is not set")
end

local function describe(t)
  return string.format("%s (bank %s, %s, MsgId %s, %d transactions, %s)",
    t.file_name or t.id, t.bank or "?", t["function"] or "?", t.msg_id or "?", tonumber(t.nb_of_txs) or 0, t.ctrl_sum or "?")
end

local function rejected_lines(d)
  local lines = {}
  for _, tx in ipairs(d.rejected_transactions or {}) do
    lines[#lines + 1] = string.format("  - %s %s %s %s: %s %s", tx.end_to_end_id or "?", tx.name or "",
      tx.amount or "?", tx.currency or "", tx.reason_code or "?", tx.reason_text or "")
  end
  for _, r in ipairs(d.reasons or {}) do
    lines[#lines + 1] = string.format("  - %s %s: %s %s", r.level or "?", r.ref or "?", r.code or "?", r.text or "")
  end
  return table.concat(lines, "\n")
end

local function erp_status(event, status, extra)
  local t = event.data.transmission
  local body = {transmission_id = t.id, msg_id = t.msg_id, bank = t.bank, status = status}
  for k, v in pairs(extra or {}) do body[k] = v end
  once(event, "erp", function() post_erp(event, body) end)
end

-- transmission.accepted: the bank took every transaction.
function on_accepted(event)
  erp_status(event, "accepted")
end

-- transmission.partially_accepted: some transactions were rejected.
function on_partial(event)
  local d = event.data
  local rejected = {}
  for _, tx in ipairs(d.rejected_transactions or {}) do
    rejected[#rejected + 1] = {end_to_end_id = tx.end_to_end_id, pmt_inf_id = tx.pmt_inf_id, amount = tx.amount,
      currency = tx.currency, reason_code = tx.reason_code, reason_text = tx.reason_text}
  end
  erp_status(event, "partially_accepted", {rejected = rejected})
  once(event, "mail", function()
    mail.send{to = treasurer(), key = event.id .. ":treasurer",
      subject = string.format("[acquit] %d transaction(s) rejected in %s", tonumber(d.rejected_count) or #rejected,
        d.transmission.file_name or d.transmission.id),
      text = "The bank rejected part of " .. describe(d.transmission) .. ":\n" .. rejected_lines(d)}
  end)
end

-- transmission.rejected: the whole file was refused (upload or PSR).
function on_rejected(event)
  local d = event.data
  erp_status(event, "rejected", {reason_code = d.reason_code, reason_text = d.reason_text})
  once(event, "mail", function()
    mail.send{to = treasurer(), key = event.id .. ":treasurer",
      subject = "[acquit] file rejected by the bank: " .. (d.transmission.file_name or d.transmission.id),
      text = "The bank rejected " .. describe(d.transmission) .. ".\n" ..
        (d.reason_text and ("Reason: " .. (d.reason_code or "") .. " " .. d.reason_text .. "\n") or "") .. rejected_lines(d)}
  end)
end

-- transmission.unsent: the bank never took the file (every upload failed)
-- ack_deadline after it was submitted; acquit keeps trying.
function on_unsent(event)
  local d = event.data
  erp_status(event, "unsent", {deadline = d.deadline, last_error = d.last_error})
  once(event, "mail", function()
    mail.send{to = treasurer(), key = event.id .. ":treasurer",
      subject = "[acquit] file not taken by the bank: " .. (d.transmission.file_name or d.transmission.id),
      text = describe(d.transmission) .. " is still not uploaded after " .. tostring(d.upload_attempts) ..
        " attempts (last error: " .. tostring(d.last_error) .. ").\nacquit keeps trying; check the bank connection."}
  end)
end

-- transmission.unacknowledged: no acknowledgement before the deadline.
function on_unacknowledged(event)
  local d = event.data
  erp_status(event, "unacknowledged", {deadline = d.deadline})
  once(event, "mail", function()
    mail.send{to = treasurer(), key = event.id .. ":treasurer",
      subject = "[acquit] no bank acknowledgement for " .. (d.transmission.file_name or d.transmission.id),
      text = "No acknowledgement arrived before " .. tostring(d.deadline) .. " for " .. describe(d.transmission) ..
        ".\nCheck the bank's portal before sending the file again."}
  end)
end

-- ack.unmatched: an acknowledgement names no known transmission.
function on_unmatched(event)
  local d = event.data
  local lines = {}
  for _, e in ipairs(d.entries or {}) do
    lines[#lines + 1] = string.format("  - %s %s %s %s %s", e.Level or "?", e.Ref or "?", e.Status or "?", e.ReasonCode or "", e.ReasonText or "")
  end
  once(event, "mail", function()
    mail.send{to = treasurer(), key = event.id .. ":treasurer",
      subject = string.format("[acquit] unmatched %s acknowledgement from %s", d.kind or "?", d.bank or "?"),
      text = string.format("Acknowledgement %s (%s) matches no transmission.\n%s%s", d.ack_id or "?", d.name or "?",
        d.reason and ("Reason: " .. d.reason .. "\n") or "", table.concat(lines, "\n"))}
  end)
end
