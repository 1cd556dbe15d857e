function run(event)
  local g = getfenv(0)
  g.string = nil
end
