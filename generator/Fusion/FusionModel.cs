namespace Mix.Generator;

// The fusion planner's equatable model: a forward expression as a flat list of nodes (children before parents, the
// root last), and the regions the planner cuts out of it. No C#, no CUDA: the translator builds the graph from what it
// evaluated, the planner decides, the CUDA emitter and the translator render.

/// <summary>
/// One node of a fusion graph. <see cref="Kind"/>: <c>input</c> (a tensor computed outside any region: a local, a
/// layer's output, a library call), <c>scalar</c> (a number fixed per module instance, such as <c>options.Eps</c>),
/// <c>const</c> (a literal, <see cref="Value"/>), <c>unary</c>/<c>binary</c> (pointwise <see cref="Op"/>),
/// <c>reduce</c> (<see cref="Op"/> sum, mean, max, min over the single axis <see cref="Axis"/>) or <c>softmax</c>
/// (over <see cref="Axis"/>).
/// </summary>
public sealed record FusionNode(string Kind, string Op, EquatableArray<int> Args, int Axis = 0, bool KeepDim = true, string? Value = null)
{
    /// <summary>Whether the node computes something (not an input, scalar or literal).</summary>
    public bool IsOp => Kind is "unary" or "binary" or "reduce" or "softmax";

    /// <summary>Whether the node reduces along its axis (a reduction or a softmax).</summary>
    public bool IsRowOp => Kind is "reduce" or "softmax";
}

/// <summary>A forward expression: nodes in dependency order, the root last.</summary>
public sealed record FusionGraph(EquatableArray<FusionNode> Nodes)
{
    /// <summary>The index of the root (the expression's value).</summary>
    public int Root => Nodes.Count - 1;
}

/// <summary>
/// A region the planner chose: the op nodes it computes (<see cref="Nodes"/>, dependency order, <see cref="Root"/>
/// last), the tensors it reads (<see cref="Inputs"/>: input nodes or the roots of what runs before it, in argument
/// order), the per-instance numbers (<see cref="Scalars"/>). <see cref="Kind"/> is <c>pointwise</c> (one output
/// element per thread, broadcasting by strides) or <c>row</c> (reductions and softmax over <see cref="Axis"/>, one row
/// per block, <see cref="Reduced"/> when the root drops that axis). <see cref="Reductions"/>: per reduction or softmax,
/// a bit mask of the inputs below it; one of them must have the full size along the axis (checked when it runs: a
/// reduction over an operand broadcast along its axis has a different count).
/// </summary>
public sealed record RegionPlan(
    string Kind,
    int Root,
    EquatableArray<int> Nodes,
    EquatableArray<int> Inputs,
    EquatableArray<int> Scalars,
    int Axis,
    bool Reduced,
    EquatableArray<int> Reductions);

/// <summary>
/// A fused region as the emitter writes it: the field that runs it, the CUDA C++ of its arithmetic (the runtime wraps
/// it in its launch skeleton), the C# of the per-instance scalars and what the kernel needs to know to launch it.
/// </summary>
public sealed record RegionSpec(
    string Field,
    string Name,
    string Summary,
    string Source,
    int Inputs,
    EquatableArray<string> Scalars,
    string Kind,
    int Axis,
    bool Reduced,
    EquatableArray<int> Reductions);
