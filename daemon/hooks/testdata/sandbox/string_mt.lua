-- tries to reach the shared string table through the string metatable
function run(event)
  local mt = getmetatable("")
  mt.__index.upper = function() return "pwned" end
end
