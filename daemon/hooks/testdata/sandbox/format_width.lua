function run(event)
  return string.format("%999999999d", 1)
end
