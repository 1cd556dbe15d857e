function run(event)
  local name = "/etc/passwd"
  return require(name)
end
