// Poc.Scenarios — the scenario runner hosted by .NET: C++, Rust and .NET runtimes in one process,
// driven through the public API of Poc.Bridge only (the scenarios are examples to copy).
//
//   Poc.Scenarios [SCENARIO...] [--messages N] [--payload B] [--capacity C] [--verbose]
//   Poc.Scenarios --list
//
// scripts/run is the front door: it builds everything and calls this for the scenarios it hosts.
// Exit code: 0 when every invariant held, 1 when one broke, 2 for bad arguments.
using Poc.Scenarios;

return await Runner.MainAsync(args);
