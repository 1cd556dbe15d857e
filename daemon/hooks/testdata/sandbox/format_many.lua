-- a format multiplying a big argument
function run(event)
  local big = string.rep("x", 1024 * 1024)
  local args = {}
  for i = 1, 100 do args[i] = big end
  return #string.format(string.rep("%s", 100), unpack(args))
end
