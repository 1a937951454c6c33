using Mix.Runtime;
using Xunit;

namespace Mix.Runtime.Tests;

/// <summary>The chunked scan keeps one chunk's batch·d·n·T² intermediates within a fixed budget (64 Mi elements).</summary>
public class SelectiveScanChunkBudgetTests
{
    [Theory]
    [InlineData(64, 2L * 16 * 8, 64)]        // small tensors: the requested chunk
    [InlineData(64, 32L * 128 * 16, 32)]     // a CPU training batch: sqrt(64 Mi / 65,536) = 32
    [InlineData(64, 64L * 1536 * 16, 6)]     // sqrt(64 Mi / 1,572,864) = 6.5
    [InlineData(64, 1L << 40, 4)]            // never below 4
    public void ChunkShrinksToTheBudget(int requested, long batchChannelsState, int expected)
    {
        Assert.Equal(expected, SelectiveScan.BoundedChunk(requested, batchChannelsState));
    }
}
