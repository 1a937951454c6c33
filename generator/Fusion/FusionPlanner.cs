using System.Collections.Generic;
using System.Linq;

namespace Mix.Generator;

/// <summary>
/// Cuts a forward expression into fused regions: maximal connected groups of pointwise ops, reductions and softmax
/// that one kernel can compute. A pure function of the graph (unit-tested on the CPU).
/// </summary>
/// <remarks>
/// Rules. Walking from the root, a region takes every op below it that can join; what cannot join is an input of the
/// region and is planned on its own. Pointwise ops always join. A reduction or softmax joins when it runs along the
/// region's axis (the first one fixes it); a reduction that drops its axis (<c>keepdim = false</c>) only as the root
/// (its result has another shape than the rest). A region is kept when it replaces at least two library ops (one op is
/// already one kernel) and reads at most <see cref="MaxInputs"/> tensors and <see cref="MaxScalars"/> numbers.
/// </remarks>
public static class FusionPlanner
{
    /// <summary>Most tensors one region reads (the launch skeleton's argument block holds eight).</summary>
    public const int MaxInputs = 6;

    /// <summary>Most per-instance numbers one region takes.</summary>
    public const int MaxScalars = 8;

    /// <summary>The regions of <paramref name="graph"/>, outermost first.</summary>
    public static EquatableArray<RegionPlan> Plan(FusionGraph graph)
    {
        var regions = new List<RegionPlan>();
        if (graph.Nodes.Count > 0) Visit(graph, graph.Root, regions);
        return regions.ToEquatableArray();
    }

    static void Visit(FusionGraph g, int node, List<RegionPlan> regions)
    {
        if (!g.Nodes[node].IsOp) return;
        var region = Grow(g, node);
        if (region is not null)
        {
            regions.Add(region);
            foreach (var input in region.Inputs) Visit(g, input, regions);
            return;
        }
        foreach (var arg in g.Nodes[node].Args.Distinct()) Visit(g, arg, regions);
    }

    /// <summary>The region rooted at <paramref name="root"/>, or null when it is not worth a kernel.</summary>
    static RegionPlan? Grow(FusionGraph g, int root)
    {
        var rootNode = g.Nodes[root];
        int? axis = rootNode.IsRowOp ? rootNode.Axis : null;
        var members = new HashSet<int> { root };
        var order = new List<int>();
        var inputs = new List<int>();
        var scalars = new List<int>();

        void Take(int n)
        {
            foreach (var a in g.Nodes[n].Args)
            {
                var arg = g.Nodes[a];
                if (arg.IsOp && !members.Contains(a) && CanJoin(arg))
                {
                    members.Add(a);
                    Take(a);
                }
                else if (arg.Kind == "scalar")
                {
                    if (!scalars.Contains(a)) scalars.Add(a);
                }
                else if (arg.Kind != "const" && !(arg.IsOp && members.Contains(a)))
                {
                    if (!inputs.Contains(a)) inputs.Add(a);
                }
            }
            order.Add(n);
        }

        // The region's inputs below a node (bit i: input i).
        int Below(int n)
        {
            int mask = 0;
            foreach (var a in g.Nodes[n].Args)
            {
                int i = inputs.IndexOf(a);
                if (i >= 0) mask |= 1 << i;
                else if (members.Contains(a)) mask |= Below(a);
            }
            return mask;
        }

        bool CanJoin(FusionNode n)
        {
            if (!n.IsRowOp) return true;
            if (n.Kind == "reduce" && !n.KeepDim) return false;
            if (axis is null) axis = n.Axis;
            return axis == n.Axis;
        }

        Take(root);
        int ops = order.Count;
        if (ops < 2 || inputs.Count == 0 || inputs.Count > MaxInputs || scalars.Count > MaxScalars) return null;
        bool row = axis is not null;
        return new RegionPlan(
            row ? "row" : "pointwise",
            root,
            order.ToEquatableArray(),
            inputs.ToEquatableArray(),
            scalars.ToEquatableArray(),
            axis ?? 0,
            rootNode.Kind == "reduce" && !rootNode.KeepDim,
            order.Where(n => g.Nodes[n].IsRowOp).Select(Below).ToEquatableArray());
    }
}
