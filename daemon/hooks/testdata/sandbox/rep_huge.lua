function run(event)
  return #string.rep("x", 2^31)
end
