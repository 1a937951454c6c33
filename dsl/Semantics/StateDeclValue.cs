namespace Mix.Dsl.Semantics;

/// <summary>
/// <c>state(...)</c> before it is bound: a binding statement in a mixer's body gives it its name, and the name then
/// stands for a tensor of <see cref="Shape"/> (zeros outside a decoding cache, the layer's slot inside one).
/// </summary>
public sealed record StateDeclValue(Shape Shape) : Value
{
    /// <inheritdoc />
    public override string Describe() => $"state {Shape} (bind it to a name in a mixer's body)";
}
