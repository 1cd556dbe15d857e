function run(event)
  local t, i = {}, 0
  local pad = string.rep("p", 10000)
  while true do
    i = i + 1
    t[i] = pad .. i
  end
end
