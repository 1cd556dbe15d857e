function run(event)
  local t = {}
  local chunk = string.rep("y", 1024 * 1024)
  for i = 1, 64 do t[i] = chunk end
  return #table.concat(t)
end
