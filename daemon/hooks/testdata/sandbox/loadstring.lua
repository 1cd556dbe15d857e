function run(event)
  local f = loadstring("return 1")
  return f()
end
