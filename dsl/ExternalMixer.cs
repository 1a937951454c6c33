namespace Mix.Dsl;

/// <summary>
/// A token mixer implemented outside .mix (a C# module with a <c>[Mixer]</c> attribute), declared to the checker by
/// its parameters and shape contract in .mix syntax, so .mix files use and check it like a built-in.
/// </summary>
/// <param name="Name">The .mix name, e.g. <c>"mymix"</c>.</param>
/// <param name="Parameters">Its parameters without <c>dim</c> (implicit, as for every mixer), e.g. <c>"scale: float = 1.0"</c>.</param>
/// <param name="Signature">Its contract, e.g. <c>"(x: [B, N, dim]) -> [B, N, dim]"</c>.</param>
/// <param name="Origin">Where it was declared (e.g. the C# type name), used as the path of diagnostics about it.</param>
public sealed record ExternalMixer(string Name, string Parameters, string Signature, string Origin);
