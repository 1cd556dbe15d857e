-- tries to poison metatables the engine hands out
function run(event)
  local mt = getmetatable(json.array())
  mt.__index = function() return "pwned" end
  local ok = pcall(setmetatable, json.null, {})
  assert(not ok, "json.null metatable changed")
  return getmetatable(_G) .. "|" .. tostring(getmetatable(""))
end
