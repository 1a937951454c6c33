using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text;

namespace Mix.Generator;

/// <summary>
/// CUDA C++ of a region's arithmetic: the functions the runtime's launch skeleton (<c>Mix.Runtime.Fused.RegionKernels</c>)
/// calls per element, with everything in float32 registers (the skeleton loads and stores each input in its own dtype).
/// Pointwise: <c>mix_eval(in, s)</c>. Row: the reductions get accumulator slots filled in phases (a slot's phase is the
/// number of reductions its argument depends on), <c>mix_phase(p, ...)</c> accumulates phase p's slots and
/// <c>mix_eval</c> (or <c>mix_eval_reduced</c>) computes the output once every slot is known.
/// </summary>
public static class CudaRegionEmitter
{
    /// <summary>The source of <paramref name="region"/> of <paramref name="graph"/>; <paramref name="summary"/> becomes its comment.</summary>
    public static string Emit(FusionGraph graph, RegionPlan region, string summary)
    {
        var sb = new StringBuilder();
        sb.AppendLine("// " + summary.Replace("\n", " "));
        sb.AppendLine($"#define MIX_INPUTS {region.Inputs.Count}");
        sb.AppendLine($"#define MIX_ROW {(region.Kind == "row" ? 1 : 0)}");

        var inputIndex = new Dictionary<int, int>();
        for (int i = 0; i < region.Inputs.Count; i++) inputIndex[region.Inputs[i]] = i;
        var scalarIndex = new Dictionary<int, int>();
        for (int i = 0; i < region.Scalars.Count; i++) scalarIndex[region.Scalars[i]] = i;
        var members = new HashSet<int>(region.Nodes);

        // Levels: 0 for what is known per element from the start; a reduction's value is known one phase after its
        // argument (softmax needs two: the row maximum, then the sum of exponentials).
        var level = new Dictionary<int, int>();
        var slots = new List<(int Node, string Combine, int Phase, string Term)>();
        var maxSlot = new Dictionary<int, int>();
        var sumSlot = new Dictionary<int, int>();
        int Level(int n) => members.Contains(n) ? level[n] : 0;
        foreach (var n in region.Nodes)
        {
            var node = graph.Nodes[n];
            int argLevel = node.Args.Count == 0 ? 0 : node.Args.Max(Level);
            switch (node.Kind)
            {
                case "reduce":
                    sumSlot[n] = slots.Count;
                    slots.Add((n, node.Op is "max" or "amax" ? "max" : node.Op == "min" ? "min" : "sum", argLevel, Ref(node.Args[0])));
                    level[n] = argLevel + 1;
                    break;
                case "softmax":
                    maxSlot[n] = slots.Count;
                    slots.Add((n, "max", argLevel, Ref(node.Args[0])));
                    sumSlot[n] = slots.Count;
                    slots.Add((n, "sum", argLevel + 1, $"expf({Ref(node.Args[0])} - red[{maxSlot[n]}])"));
                    level[n] = argLevel + 2;
                    break;
                default:
                    level[n] = argLevel;
                    break;
            }
        }

        string Ref(int n)
        {
            if (members.Contains(n)) return "v" + n.ToString(CultureInfo.InvariantCulture);
            if (inputIndex.TryGetValue(n, out var i)) return $"in[{i}]";
            if (scalarIndex.TryGetValue(n, out var s)) return $"s[{s}]";
            return Literal(graph.Nodes[n].Value ?? "0");
        }

        string Value(int n)
        {
            var node = graph.Nodes[n];
            var a = node.Args.Select(Ref).ToList();
            switch (node.Kind)
            {
                case "unary": return Unary(node.Op, a[0]);
                case "binary": return Binary(node.Op, a[0], a[1]);
                case "reduce": return node.Op == "mean" ? $"red[{sumSlot[n]}] * inv_n" : $"red[{sumSlot[n]}]";
                case "softmax": return $"expf({a[0]} - red[{maxSlot[n]}]) / red[{sumSlot[n]}]";
            }
            return "0.0f";
        }

        void Body(int upTo, string indent)
        {
            foreach (var n in region.Nodes)
                if (level[n] <= upTo) sb.AppendLine($"{indent}const float v{n.ToString(CultureInfo.InvariantCulture)} = {Value(n)};");
        }

        if (region.Nodes.Any(n => graph.Nodes[n].Op == "act")) EmitActivationSwitch(sb);

        const string Params = "const float* __restrict__ in, const float* __restrict__ s";
        if (region.Kind != "row")
        {
            sb.AppendLine($"__device__ __forceinline__ float mix_eval({Params}) {{");
            Body(int.MaxValue, "  ");
            sb.AppendLine($"  return {Ref(region.Root)};");
            sb.AppendLine("}");
            return sb.ToString();
        }

        int phases = slots.Count == 0 ? 0 : slots.Max(s => s.Phase) + 1;
        sb.AppendLine($"#define MIX_PHASES {phases}");
        sb.AppendLine($"#define MIX_SLOTS {slots.Count}");
        sb.AppendLine($"#define MIX_REDUCED {(region.Reduced ? 1 : 0)}");
        sb.AppendLine("// Accumulator slots: the start value and how two partial results combine.");
        sb.AppendLine("__device__ __forceinline__ float mix_slot_init(int k) {");
        for (int k = 0; k < slots.Count; k++)
            sb.AppendLine($"  if (k == {k}) return {(slots[k].Combine == "max" ? "-INFINITY" : slots[k].Combine == "min" ? "INFINITY" : "0.0f")};");
        sb.AppendLine("  return 0.0f;");
        sb.AppendLine("}");
        sb.AppendLine("__device__ __forceinline__ float mix_slot_combine(int k, float a, float b) {");
        for (int k = 0; k < slots.Count; k++)
            if (slots[k].Combine != "sum") sb.AppendLine($"  if (k == {k}) return {(slots[k].Combine == "max" ? "fmaxf" : "fminf")}(a, b);");
        sb.AppendLine("  return a + b;");
        sb.AppendLine("}");
        sb.AppendLine("__device__ __forceinline__ int mix_slot_phase(int k) {");
        for (int k = 0; k < slots.Count; k++) sb.AppendLine($"  if (k == {k}) return {slots[k].Phase};");
        sb.AppendLine("  return 0;");
        sb.AppendLine("}");
        sb.AppendLine($"__device__ __forceinline__ void mix_phase(int p, {Params}, const float* red, float inv_n, float* acc) {{");
        for (int p = 0; p < phases; p++)
        {
            sb.AppendLine($"  if (p == {p}) {{");
            Body(p, "    ");
            for (int k = 0; k < slots.Count; k++)
            {
                if (slots[k].Phase != p) continue;
                var term = slots[k].Term;
                sb.AppendLine(slots[k].Combine switch
                {
                    "max" => $"    acc[{k}] = fmaxf(acc[{k}], {term});",
                    "min" => $"    acc[{k}] = fminf(acc[{k}], {term});",
                    _ => $"    acc[{k}] += {term};",
                });
            }
            sb.AppendLine("  }");
        }
        sb.AppendLine("}");
        if (region.Reduced)
        {
            sb.AppendLine("__device__ __forceinline__ float mix_eval_reduced(const float* __restrict__ s, const float* red, float inv_n) {");
            sb.AppendLine($"  return {Value(region.Root)};");
            sb.AppendLine("}");
        }
        else
        {
            sb.AppendLine($"__device__ __forceinline__ float mix_eval({Params}, const float* red, float inv_n) {{");
            Body(int.MaxValue, "  ");
            sb.AppendLine($"  return {Ref(region.Root)};");
            sb.AppendLine("}");
        }
        return sb.ToString();
    }

    /// <summary>
    /// An activation layer chosen per module instance: the region reads the number <c>FusedRegion.ActivationCode</c>
    /// bound for the layer (uniform over the launch, so the branch costs no divergence).
    /// </summary>
    static void EmitActivationSwitch(StringBuilder sb)
    {
        sb.AppendLine("__device__ __forceinline__ float mix_act(float code, float x) {");
        string[] acts = { "identity", "relu", "gelu", "silu", "sigmoid", "tanh", "squared_relu" };
        for (int k = 1; k < acts.Length; k++)
            sb.AppendLine($"  if (code == {k}.0f) return {Unary(acts[k], "x")};");
        sb.AppendLine("  return x;");
        sb.AppendLine("}");
    }

    static string Unary(string op, string a) => op switch
    {
        "neg" => $"-({a})",
        "exp" => $"expf({a})",
        "log" => $"logf({a})",
        "sqrt" => $"sqrtf({a})",
        "rsqrt" => $"rsqrtf({a})",
        "abs" => $"fabsf({a})",
        "relu" => $"fmaxf({a}, 0.0f)",
        "squared_relu" => $"fmaxf({a}, 0.0f) * fmaxf({a}, 0.0f)",
        "sigmoid" => $"1.0f / (1.0f + expf(-({a})))",
        "silu" => $"{a} / (1.0f + expf(-({a})))",
        "tanh" => $"tanhf({a})",
        "gelu" => $"0.5f * {a} * (1.0f + erff({a} * 0.7071067811865476f))",
        // PyTorch's softplus: linear above a threshold of 20.
        "softplus" => $"({a} > 20.0f ? {a} : log1pf(expf({a})))",
        "logsigmoid" => $"(fminf({a}, 0.0f) - log1pf(expf(-fabsf({a}))))",
        _ => $"/* unknown {op} */ {a}",
    };

    static string Binary(string op, string a, string b) => op switch
    {
        "add" => $"{a} + {b}",
        "sub" => $"{a} - {b}",
        "mul" => $"{a} * {b}",
        "div" => $"{a} / {b}",
        "pow" => $"powf({a}, {b})",
        "act" => $"mix_act({b}, {a})",
        _ => $"/* unknown {op} */ {a}",
    };

    /// <summary>A float literal of CUDA C++ from a .mix number.</summary>
    public static string Literal(string value)
    {
        if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d)) return "0.0f";
        var s = ((float)d).ToString("R", CultureInfo.InvariantCulture);
        if (s.Contains("E")) s = s.Replace("E", "e");
        else if (!s.Contains(".")) s += ".0";
        return s + "f";
    }

    /// <summary>The unary ops a region computes (.mix names of activations and elementwise functions).</summary>
    public static readonly IReadOnlyCollection<string> UnaryOps = new HashSet<string>
    {
        "neg", "exp", "log", "sqrt", "rsqrt", "abs", "relu", "squared_relu", "sigmoid", "silu", "tanh", "gelu", "softplus", "logsigmoid",
    };
}
