local function down(n) return 1 + down(n + 1) end
function run(event)
  return down(1)
end
