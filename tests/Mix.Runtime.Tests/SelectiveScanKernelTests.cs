using System;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>Installs a process-wide <see cref="SelectiveScan.Kernel"/>, so it must not run beside other tests.</summary>
[CollectionDefinition(nameof(SelectiveScanKernelCollection), DisableParallelization = true)]
public sealed class SelectiveScanKernelCollection { }

[Collection(nameof(SelectiveScanKernelCollection))]
public class SelectiveScanKernelTests
{
    [Fact]
    public void InstalledKernelIsUsedWhenItSupportsTheInput()
    {
        var fake = new FakeKernel();
        var previous = SelectiveScan.Kernel;
        try
        {
            SelectiveScan.Kernel = fake;
            using var u = torch.zeros(1, 2, 3);
            using var A = torch.zeros(2, 4);
            using var B = torch.zeros(1, 4, 3);
            using var y = SelectiveScan.Scan(u, u, A, B, B);
            Assert.Equal(1, fake.ScanCalls);
            Assert.Equal(42f, y.item<float>());
            fake.Accept = false;
            using var y2 = SelectiveScan.Scan(u, u, A, B, B);
            Assert.Equal(1, fake.ScanCalls);
            Assert.Equal(new long[] { 1, 2, 3 }, y2.shape);
        }
        finally
        {
            SelectiveScan.Kernel = previous;
        }
    }

    private sealed class FakeKernel : ISelectiveScanKernel
    {
        public int ScanCalls;
        public bool Accept = true;
        public bool Supports(Tensor u, bool requiresGrad) => Accept;
        public (Tensor y, Tensor lastState) Scan(Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C, Tensor? D,
            Tensor? z, Tensor? deltaBias, bool deltaSoftplus, Tensor? initialState)
        {
            ScanCalls++;
            return (torch.tensor(42f), torch.zeros(1));
        }
        public (Tensor y, Tensor newState) Step(Tensor state, Tensor u, Tensor delta, Tensor A, Tensor B, Tensor C,
            Tensor? D, Tensor? z, Tensor? deltaBias, bool deltaSoftplus) => throw new NotSupportedException();
    }
}
