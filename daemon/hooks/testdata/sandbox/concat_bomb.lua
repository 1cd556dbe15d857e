-- One `..` of 64 operands of 16 MiB: 1 GiB in a single VM instruction
-- unless the concatenation is bounded before it is built.
function run(event)
  local s = string.rep("x", 16 * 1024 * 1024)
  local big = s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s .. s
  return #big
end
