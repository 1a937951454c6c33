using System.Collections.Generic;
using System.Linq;
using Mix.Dsl.Semantics;
using Mix.Dsl.Syntax;

namespace Mix.Generator;

/// <summary>
/// Residual sub-blocks: <c>x + branch(norm(x))</c>, optionally with a scale on either side and a drop path,
/// <c>res_scale(x) + layer_scale(drop_path(branch(norm(x)), p))</c>. One such expression becomes one call,
/// <c>MixDispatch.ResidualMixer(x, norm, mixer, ...)</c> (or <c>MixDispatch.Residual</c> for a branch that is not a token
/// mixer), so the runtime sees the norm, the branch, the scales and the add together and can run them as fused kernels;
/// it evaluates exactly the written expression otherwise.
/// </summary>
internal sealed partial class Translator
{
    VCode? TryResidual(BinaryExpr b, Scope scope)
    {
        if (b.Op != "+") return null;

        // The shortcut: x, or res_scale(x).
        VLayer? resScale = null;
        string? shortcut = ShortcutName(b.Left, scope, ref resScale);
        if (shortcut is null) return null;

        // The branch, outside in: [layer_scale(] [drop_path(] branch(norm(x)) [, p)] [)].
        var chain = new List<(VLayer? Layer, Expr? DropRate, bool IsDropPath)>();
        var e = b.Right;
        while (true)
        {
            if (SingleLayerCall(e, scope) is (VLayer layer, Expr inner))
            {
                chain.Add((layer, null, false));
                e = inner;
            }
            else if (e is CallExpr { Args.Count: 1 or 2 } dp && IsCallTo(dp, "drop_path", scope) && dp.Args[0].Name is null
                     && (dp.Args.Count == 1 || dp.Args[1].Name is null or "p"))
            {
                chain.Add((null, dp.Args.Count == 2 ? dp.Args[1].Value : null, true));
                e = dp.Args[0].Value;
            }
            else break;
        }
        if (e is not NameExpr input || input.Name != shortcut || chain.Count < 2) return null;
        int drops = chain.Count(c => c.IsDropPath);
        int dropAt = chain.FindIndex(c => c.IsDropPath);
        int layers = chain.Count - drops;
        // branch(norm(x)), a layer scale above it or not, and at most one drop path, right above the branch
        if (drops > 1 || layers is < 2 or > 3 || (drops == 1 && dropAt != chain.Count - 3)) return null;
        var norm = chain[chain.Count - 1].Layer!;
        var branch = chain[chain.Count - 2].Layer!;
        var layerScale = layers == 3 ? chain[0].Layer : null;
        var dropRate = drops == 1 ? chain[dropAt].DropRate : null;
        // the scales are applied with .call, as written; a token mixer there would need TokenMixer
        if (norm.Kind != "norm" || layerScale?.Kind == "mixer" || resScale?.Kind == "mixer") return null;

        bool allowFused = new[] { norm, branch, layerScale, resScale }.All(l => l is null || l.AllowFused);
        var x = Code(Eval(input, scope), input.Span);
        var args = new List<string> { x, norm.Field, branch.Field };
        bool named = false;
        void Add(string name, string? code)
        {
            if (code is null) { named = true; return; }
            args.Add(named ? $"{name}: {code}" : code);
        }
        Add("layerScale", layerScale?.Field);
        Add("resScale", resScale?.Field);
        if (drops == 1)
        {
            Add("dropPath", dropRate is null ? "0.0" : Code(Eval(dropRate, scope), dropRate.Span));
            Add("training", "training");
        }
        else named = true;
        if (!allowFused) Add("allowFused", "false");
        var method = branch.Kind == "mixer" ? "ResidualMixer" : "Residual";
        return new VCode($"MixDispatch.{method}({string.Join(", ", args)})", GType.Tensor);
    }

    /// <summary>The name of the shortcut tensor in <c>x</c> or <c>res_scale(x)</c>.</summary>
    string? ShortcutName(Expr e, Scope scope, ref VLayer? resScale)
    {
        if (e is NameExpr n) return IsTensorName(n, scope) ? n.Name : null;
        if (SingleLayerCall(e, scope) is (VLayer layer, NameExpr arg) && IsTensorName(arg, scope))
        {
            resScale = layer;
            return arg.Name;
        }
        return null;
    }

    bool IsTensorName(NameExpr n, Scope scope) => scope.TryGet(n.Name, out var v) && v is VCode { Type.Kind: "tensor" };

    /// <summary><c>layer(arg)</c> for a declared single layer (not a sequence) and one positional argument.</summary>
    (VLayer, Expr)? SingleLayerCall(Expr e, Scope scope) =>
        e is CallExpr { Callee: NameExpr callee, Args.Count: 1 } call && call.Args[0].Name is null
        && scope.TryGet(callee.Name, out var v) && v is VLayer { IsSequence: false } layer
            ? (layer, call.Args[0].Value)
            : null;

    bool IsCallTo(Expr e, string builtin, Scope scope) =>
        e is CallExpr { Callee: NameExpr callee } && !scope.TryGet(callee.Name, out _)
        && callee.Name == builtin && BuiltinCatalog.Find(builtin) is BuiltinCallable;
}
