-- tries to replace the protected metatable of the globals
function run(event)
  setmetatable(_G, {__index = function() return "pwned" end})
end
