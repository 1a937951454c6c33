using Mix.Runtime.Fused;
using Xunit;
using static TorchSharp.torch;

namespace Mix.Runtime.Tests;

/// <summary>
/// <see cref="FusedRegionKernel.CachePlans"/>' cache (no GPU needed): a plan is found again only for the same shapes,
/// strides, dtypes, device and switches it was made under, and the cache keeps the last eight layouts.
/// </summary>
public class RegionPlanCacheTests
{
    private static (long[] Shape, long[] Strides, ScalarType Dtype)[] Layout(long c, bool channelsLast, ScalarType dt = ScalarType.BFloat16) => new[]
    {
        (new long[] { 2, c, 4, 4 }, channelsLast ? new long[] { 16 * c, 1, 4 * c, c } : new long[] { 16 * c, 16, 4, 1 }, dt),
        (new long[] { c, 1, 1 }, new long[] { 1, 1, 1 }, dt),
    };

    private static FusedRegionKernel.LaunchPlan Plan(bool row = false) =>
        (row ? NormRegions.LayerNorm2dWeight : EpilogueRegions.Residual(false, false, true)!.Kernel).Prepare(
            row ? Layout(8, true) : new[] { Layout(8, false)[0], Layout(8, false)[1], Layout(8, false)[0] }, row ? new[] { 1e-6f } : new float[0])!;

    [Fact]
    public void A_plan_is_found_for_its_own_layout_only()
    {
        var cache = new FusedRegionKernel.PlanCache();
        var plan = Plan();
        cache.Add(Layout(8, false), 0, 0, plan);
        Assert.Same(plan, cache.Find(Layout(8, false), 0, 1, 0));
        Assert.Null(cache.Find(Layout(8, true), 0, 1, 0));                          // strides
        Assert.Null(cache.Find(Layout(16, false), 0, 1, 0));                        // shapes
        Assert.Null(cache.Find(Layout(8, false, ScalarType.Float16), 0, 1, 0));     // dtypes
        Assert.Null(cache.Find(Layout(8, false), 1, 1, 0));                         // device
        Assert.Null(cache.Find(Layout(8, false), 0, 2, 0));                         // a pointwise plan's unroll
        Assert.Same(plan, cache.Find(Layout(8, false), 0, 1, 1));                    // the row switch is not a pointwise plan's
        Assert.Null(cache.Find(new[] { Layout(8, false)[0] }, 0, 1, 0));            // input count

        var row = Plan(row: true);
        cache.Add(Layout(8, true), 0, 0, row);
        Assert.Same(row, cache.Find(Layout(8, true), 0, 1, 0));
        Assert.Same(row, cache.Find(Layout(8, true), 0, 2, 0));                     // the unroll is not a row plan's
        Assert.Null(cache.Find(Layout(8, true), 0, 1, 1));                              // RowVector16
        Assert.Null(cache.Find(Layout(8, true), 0, 1, 2));                              // RowInRegisters
    }

    [Fact]
    public void The_cache_keeps_the_last_eight_layouts()
    {
        var cache = new FusedRegionKernel.PlanCache();
        var plan = Plan();
        for (long c = 1; c <= 9; c++) cache.Add(Layout(c, false), 0, 0, plan);
        Assert.Null(cache.Find(Layout(1, false), 0, 1, 0));
        for (long c = 2; c <= 9; c++) Assert.Same(plan, cache.Find(Layout(c, false), 0, 1, 0));
    }
}
