function run(event)
  local t, i = {}, 0
  while true do
    i = i + 1
    t[i] = "entry number " .. i
  end
end
