using Mix.Runtime.Fused;
using Xunit;

namespace Mix.Runtime.Tests.Scans;

/// <summary>The fused scans' path by sequence length (<see cref="ScanDispatch"/>), decided without a device.</summary>
public class ScanDispatchTests
{
    [Theory]
    [InlineData(1)]      // a decode step
    [InlineData(37)]
    [InlineData(1024)]
    public void SsdWithoutChunkedKernelsTakesTheRecurrentKernelUpToTheCrossover(long length) =>
        Assert.Equal(ScanForward.Recurrent, ScanDispatch.Ssd(length, chunkedFits: false));

    [Theory]
    [InlineData(1025)]
    [InlineData(2048)]   // run 13a: recurrent 2.15 ms, reference 1.48 ms
    [InlineData(16384)]  // recurrent 18.8 ms, reference 6.7 ms
    public void SsdWithoutChunkedKernelsTakesTheReferenceAboveTheCrossover(long length) =>
        Assert.Equal(ScanForward.Reference, ScanDispatch.Ssd(length, chunkedFits: false));

    [Fact]
    public void TheCrossoverLiesBelowTheShortestLengthWhereTheReferenceWasMeasuredFaster() =>
        Assert.InRange(ScanDispatch.SsdRecurrentMaxLength, ScanDispatch.ChunkedMinLength, 2047);

    [Theory]
    [InlineData(1, ScanForward.Recurrent)]
    [InlineData(63, ScanForward.Recurrent)]
    [InlineData(64, ScanForward.Chunked)]
    [InlineData(2048, ScanForward.Chunked)]
    [InlineData(16384, ScanForward.Chunked)]
    public void SsdWithChunkedKernelsTakesThemFromOneChunkOn(long length, ScanForward expected) =>
        Assert.Equal(expected, ScanDispatch.Ssd(length, chunkedFits: true));

    [Theory]
    [InlineData(1, false, ScanForward.Recurrent)]
    [InlineData(16384, false, ScanForward.Recurrent)]  // the recurrent kernel beats the reference 5× at every measured length
    [InlineData(1, true, ScanForward.Recurrent)]       // the decode step stays fused and recurrent
    [InlineData(64, true, ScanForward.Chunked)]
    [InlineData(16384, true, ScanForward.Chunked)]
    public void Gla(long length, bool chunkedFits, ScanForward expected) =>
        Assert.Equal(expected, ScanDispatch.Gla(length, chunkedFits));
}
