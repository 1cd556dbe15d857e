-- integer keys far beyond the end of a table must not fill the gap
function run(event)
  local t = {}
  for i = 1, 20 do t[2^26 - i] = i end
  t[2^20 - 1] = "edge"
  local seq = {}
  for i = 1, 1000 do seq[#seq + 1] = i end
  table.insert(seq, 1001)
  return #seq .. "|" .. t[2^26 - 1] .. "|" .. t[2^20 - 1]
end
