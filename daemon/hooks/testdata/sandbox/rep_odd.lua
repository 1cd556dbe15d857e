-- odd repeat counts: NaN and fractions behave, infinity is refused
function run(event)
  assert(string.rep("x", 0/0) == "", "NaN count")
  assert(string.rep("ab", 2.9) == "abab", "fractional count")
  assert(string.rep("x", -1) == "", "negative count")
  return string.rep("x", 1/0)
end
