using System.Collections.Generic;
using Mix.Dsl.Syntax;

namespace Mix.Dsl.Semantics;

/// <summary>How unbound capitalised names in a shape are read.</summary>
internal enum FreeSymbols
{
    /// <summary>An error: every name must be bound.</summary>
    Forbidden,
    /// <summary>A new symbolic dimension (a signature read on its own).</summary>
    Symbol,
    /// <summary>A placeholder to solve for (matching a signature against an actual shape).</summary>
    Placeholder,
}

/// <summary>The state of evaluating one body: where names live and where new layers attach.</summary>
internal sealed class Frame
{
    public Frame(FileContext file, Scope scope, LayerNode? node, bool createsChildren)
    {
        File = file;
        Scope = scope;
        Node = node;
        CreatesChildren = createsChildren;
    }

    public FileContext File { get; }
    public Scope Scope { get; set; }
    /// <summary>The module whose body this is.</summary>
    public LayerNode? Node { get; }
    /// <summary>False when a layer is applied a second time: its children already exist.</summary>
    public bool CreatesChildren { get; }
    public FreeSymbols FreeSymbols { get; set; }
    /// <summary>While checking a <c>param</c>/<c>buffer</c> init: the declared shape, which initializers take.</summary>
    public Shape? InitShape { get; set; }
    /// <summary>Layers declared in this body, in order (the pipeline when there is no return).</summary>
    public List<(Identifier Name, LayerValue Layer)> DeclaredLayers { get; } = new();
    /// <summary>Whether a statement of this body bound a value derived from an error: the body's result is then
    /// unknown too, and nothing that depends on it is reported again.</summary>
    public bool HadError { get; set; }
    /// <summary><c>@tied</c> annotations of this body with their layers, checked once the body has run (the weights
    /// they name exist only after the layers that hold them were applied).</summary>
    public List<(Annotation Annotation, LayerNode Layer)> Ties { get; } = new();

    /// <summary>In a mixer's body: the shape of its first input (whose first axis is the batch of its states).</summary>
    public Shape? MixerInput { get; set; }
    /// <summary>In a mixer's body: the symbols of the sizes its signature binds (B, L, ...), which a state's
    /// per-row sizes may not use.</summary>
    public HashSet<string>? InputSymbols { get; set; }
    /// <summary>States declared in this body (<c>s = state(...)</c>), by name; null until the first (frames are many).</summary>
    public Dictionary<string, Evaluator.StateInfo>? States { get; set; }
    /// <summary>In a mixer's body that calls causal_attention: its heads and head size (the KV footprint).</summary>
    public (Dim Heads, Dim HeadDim)? KeyValues { get; set; }

    public Frame WithScope(Scope scope) =>
        new(File, scope, Node, CreatesChildren) { FreeSymbols = FreeSymbols, InitShape = InitShape };
}
