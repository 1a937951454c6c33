using System;
using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Syntax;

namespace Mix.Dsl.Semantics;

/// <summary>What a callable makes.</summary>
public enum CallableKind
{
    /// <summary>A model definition.</summary>
    Model,
    /// <summary>A block definition or composite built-in.</summary>
    Block,
    /// <summary>A token mixer (implicit <c>dim</c>).</summary>
    Mixer,
    /// <summary>A normalization layer (implicit <c>dim</c>).</summary>
    Norm,
    /// <summary>An activation.</summary>
    Act,
    /// <summary>A primitive layer (<c>linear</c>, <c>conv2d</c>).</summary>
    Layer,
    /// <summary>A stateless function (<c>transpose</c>, <c>len</c>).</summary>
    Function,
}

/// <summary>A parameter of a definition or built-in.</summary>
public sealed class ParamSpec
{
    /// <summary>Creates a parameter.</summary>
    public ParamSpec(string name, MixType type, Value? @default = null, bool required = false, Expr? defaultExpr = null)
    {
        Name = name;
        Type = type;
        Default = @default;
        DefaultExpr = defaultExpr;
        Required = required;
    }

    /// <summary>Name (also the named-argument spelling).</summary>
    public string Name { get; }
    /// <summary>Type.</summary>
    public MixType Type { get; }
    /// <summary>Default of a built-in parameter.</summary>
    public Value? Default { get; }
    /// <summary>Default expression of a user parameter.</summary>
    public Expr? DefaultExpr { get; }
    /// <summary>Whether a call must bind it.</summary>
    public bool Required { get; }
    /// <summary>Whether this is the implicit <c>dim</c> of a mixer or norm.</summary>
    public bool IsImplicitDim { get; init; }
}

/// <summary>Something that can be called: a user definition or a built-in.</summary>
public abstract class Callable
{
    /// <summary>Name as written in .mix.</summary>
    public abstract string Name { get; }
    /// <summary>Kind.</summary>
    public abstract CallableKind Kind { get; }
    /// <summary>Parameters; for mixers the first is the implicit <c>dim</c>.</summary>
    public abstract IReadOnlyList<ParamSpec> Params { get; }
    /// <summary>"mixer", "block", ... for messages.</summary>
    public string KindName => Kind.ToString().ToLowerInvariant();
    /// <summary>Whether <c>dim</c> is implicit (bound by instantiation, not by position in a definition call).</summary>
    public bool HasImplicitDim => Kind is CallableKind.Mixer;
    /// <summary>Parameters a definition call binds positionally.</summary>
    public IEnumerable<ParamSpec> ExplicitParams => Params.Where(p => !p.IsImplicitDim);
    /// <summary>Finds a parameter by name.</summary>
    public ParamSpec? FindParam(string name) => Params.FirstOrDefault(p => p.Name == name);
}

/// <summary>A <c>model</c>, <c>block</c> or <c>mixer</c> written in .mix.</summary>
public sealed class UserCallable : Callable
{
    readonly List<ParamSpec> _params;

    internal UserCallable(Definition definition, MixFile file, IReadOnlyList<ParamSpec> parameters)
    {
        Definition = definition;
        File = file;
        _params = parameters.ToList();
    }

    /// <summary>The syntax.</summary>
    public Definition Definition { get; }
    /// <summary>The file it is in.</summary>
    public MixFile File { get; }
    /// <summary>Implemented in C# (<see cref="ExternalMixer"/>): checked by its signature, no body.</summary>
    public bool IsExternal { get; init; }
    /// <inheritdoc />
    public override string Name => Definition.Name.Name;
    /// <inheritdoc />
    public override CallableKind Kind => Definition.Kind switch
    {
        DefinitionKind.Model => CallableKind.Model,
        DefinitionKind.Mixer => CallableKind.Mixer,
        _ => CallableKind.Block,
    };
    /// <inheritdoc />
    public override IReadOnlyList<ParamSpec> Params => _params;

    /// <summary>Parameters are resolved after imports, so that imported enums are known as types.</summary>
    internal void SetParams(IEnumerable<ParamSpec> parameters)
    {
        _params.Clear();
        _params.AddRange(parameters);
    }
}

/// <summary>An anonymous block: <c>{ downsample = ...; blocks = ... }</c>, whose layers run in order.</summary>
public sealed class InlineCallable : Callable
{
    internal InlineCallable(InlineBlockExpr expr, MixFile file, Scope scope)
    {
        Expr = expr;
        File = file;
        Scope = scope;
    }

    /// <summary>The syntax.</summary>
    public InlineBlockExpr Expr { get; }
    /// <summary>The file it is in.</summary>
    public MixFile File { get; }
    internal Scope Scope { get; }
    /// <inheritdoc />
    public override string Name => "sequence";
    /// <inheritdoc />
    public override CallableKind Kind => CallableKind.Block;
    /// <inheritdoc />
    public override IReadOnlyList<ParamSpec> Params => Array.Empty<ParamSpec>();
}
