namespace Mix.Dsl.Semantics;

/// <summary>
/// <c>param(...)</c> or <c>buffer(...)</c> before it is bound: a binding statement gives it its name (the state-dict
/// key) and the name then stands for a tensor of <see cref="Shape"/>.
/// </summary>
public sealed record WeightDeclValue(Shape Shape, bool IsBuffer, bool Frozen, bool Persistent) : Value
{
    /// <inheritdoc />
    public override string Describe() => $"{(IsBuffer ? "buffer" : "param")} {Shape} (bind it to a name: its state-dict key)";
}
