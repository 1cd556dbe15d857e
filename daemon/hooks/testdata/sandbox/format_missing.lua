-- more conversions than arguments
function run(event)
  return #string.format(string.rep("%s", 1000000))
end
