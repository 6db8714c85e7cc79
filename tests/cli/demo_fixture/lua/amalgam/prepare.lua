-- the demo tests' prepare: nothing to fetch (tests/cli/demo_fixture/README.md)
return { main = function(o)
  print("prepare: test stand-in, nothing to do")
  return true
end }
