-- tries to read a file
function run(event)
  local f = io.open("/etc/passwd", "r")
  return f:read("*a")
end
