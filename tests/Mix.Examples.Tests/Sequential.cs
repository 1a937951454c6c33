using Xunit;

// The examples seed TorchSharp's global generator and train; run in parallel, two examples draw from that one
// generator in an order that changes from run to run, and a seeded accuracy is no longer reproducible.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
