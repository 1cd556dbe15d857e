function run(event)
  local s = string.rep("a", 1000000)
  return #string.gsub(s, "a", string.rep("b", 100))
end
