function run(event)
  collectgarbage("collect")
end
