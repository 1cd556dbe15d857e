function run(event)
  return select("#", unpack({}, 1, 1e8))
end
