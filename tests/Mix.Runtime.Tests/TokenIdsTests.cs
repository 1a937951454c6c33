using System;
using TorchSharp;
using Xunit;

namespace Mix.Runtime.Tests;

/// <summary>Token ids are checked in managed code: the message names the id, its position, the bound and the layer.</summary>
public sealed class TokenIdsTests
{
    [Fact]
    public void IdsInsideTheVocabularyPassInEitherIntegerType()
    {
        using var ids = torch.tensor(new long[] { 0, 5, 9 }).reshape(1, 3);
        TokenIds.Check(ids, 10, "embed");
        using var ints = ids.to_type(torch.ScalarType.Int32);
        TokenIds.Check(ints, 10, "embed");
        using var empty = torch.zeros(new long[] { 2, 0 }, torch.ScalarType.Int64);
        TokenIds.Check(empty, 10, "embed");
    }

    [Theory]
    [InlineData(10, "1, 2")]
    [InlineData(-4, "1, 2")]
    public void AnIdOutsideIsNamedWithItsPositionTheBoundAndTheLayer(long bad, string at)
    {
        using var ids = torch.tensor(new long[] { 0, 5, 9, 1, 2, bad }).reshape(2, 3);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => TokenIds.Check(ids, 10, "backbone.embeddings"));
        Assert.Contains($"token id {bad} at [{at}] is outside the vocabulary of backbone.embeddings: ids must lie in [0, 10)", e.Message);
        Assert.Equal(bad, e.ActualValue);
    }

    [Fact]
    public void NonContiguousIdsTakeTheReductionPathWithTheSameResult()
    {
        using var ids = torch.tensor(new long[] { 0, 5, 9, 1, 12, 2 }).reshape(2, 3);
        using var transposed = ids.t();   // [3, 2], not contiguous: min/max reductions instead of the in-place scan
        Assert.False(transposed.is_contiguous());
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => TokenIds.Check(transposed, 10, "embed"));
        Assert.Contains("token id 12 at [1, 1]", e.Message);
        TokenIds.Check(transposed, 13, "embed");
        using var ints = transposed.to_type(torch.ScalarType.Int32);
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenIds.Check(ints, 12, "embed"));
    }

    [Fact]
    public void FloatingPointIdsAreRefused()
    {
        using var ids = torch.tensor(new float[] { 1, 2 });
        var e = Assert.Throws<ArgumentException>(() => TokenIds.Check(ids, 10, "embed"));
        Assert.Contains("must be int64 or int32, got Float32", e.Message);
    }

    [Theory]
    [InlineData("mamba")]
    [InlineData("attention")]
    [InlineData("hybrid")]
    public void LanguageModelsWantIdsOfShapeBatchByLength(string kind)
    {
        using var noGrad = torch.no_grad();
        using var model = Caches.CacheInvariantTests.Build(kind);
        using var flat = torch.tensor(new long[] { 1, 2, 3 });
        var e = Assert.Throws<ArgumentException>(() => model.forward(flat));
        Assert.Contains("must be [batch, L], got [3]", e.Message);
        using var cache = ((Mix.Runtime.Caches.ICausalLM)model).CreateCache(1);
        e = Assert.Throws<ArgumentException>(() => ((Mix.Runtime.Caches.ICausalLM)model).Forward(flat, cache));
        Assert.Contains("must be [batch, n], got [3]", e.Message);
    }
}
