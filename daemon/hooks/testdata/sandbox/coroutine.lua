function run(event)
  local co = coroutine.create(function() end)
end
