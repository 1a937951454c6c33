using System.Linq;
using Mix.Dsl.Diagnostics;

namespace Mix.Dsl.Semantics;

// Auxiliary losses and statistics of a forward (a mixture of experts' load balancing, a router's sparsity, dropped
// tokens): `l = aux_loss("balance", e * sum(f * p))` records a scalar under the module whose body says it and gives the
// value back; C# reads them after the forward (Mix.Runtime.Builtins.MixAux). aux_stat records a number that is reported,
// not trained on (detached).
public static partial class BuiltinCatalog
{
    static void RegisterAux()
    {
        Aux("aux_loss", "records a scalar auxiliary loss of this forward under the module (MixAux.Losses); gives the value back");
        Aux("aux_stat", "records a scalar statistic of this forward under the module (MixAux.Stats, detached); gives the value back");
    }

    static void Aux(string name, string summary) =>
        Math2(name, new[] { Req("name", MixType.String), Req("value", MixType.Tensor) }, "name, [] -> []", summary, c =>
        {
            if (c.Arg("name") is StringValue { Value: string n } && !IsAuxName(n))
            {
                c.Report(DiagnosticIds.OutOfRange,
                    $"{name}'s name is a word of letters, digits and '_' that starts with a letter (it becomes part of a dotted key); got \"{n}\"");
                return UnknownValue.Instance;
            }
            if (c.Arg("value") is not TensorValue { Shape: var s }) return UnknownValue.Instance;
            if (s.Rank != 0)
            {
                c.Report(DiagnosticIds.InputShapeMismatch,
                    $"{name} records a scalar ([]: a reduction such as sum(x) or mean(x, [0, 1])) but got {s}");
                return UnknownValue.Instance;
            }
            if (s.ElementType is "complex" or "bool")
            {
                c.Report(DiagnosticIds.DtypeMismatch, $"{name} records a real number; got {s}");
                return UnknownValue.Instance;
            }
            return new TensorValue(s);
        });

    static bool IsAuxName(string n) =>
        n.Length > 0 && char.IsLetter(n[0]) && n.All(ch => char.IsLetterOrDigit(ch) || ch == '_') && n.All(ch => ch < 128);
}
