function run(event)
  return #(("x"):rep(2^31))
end
