function run(event)
  dofile("/etc/passwd")
end
