function run(event)
  os.execute("touch /tmp/acquit-pwned")
end
