-- tries to swallow the timeout error
function run(event)
  while true do
    pcall(function() while true do end end)
  end
end
