using System.Collections.Generic;

namespace Mix.Dsl.Diagnostics;

/// <summary>Every diagnostic the front end reports. IDs are stable; never reuse a retired one.</summary>
public static class DiagnosticIds
{
    static readonly List<DiagnosticDescriptor> s_all = new();

    static DiagnosticDescriptor D(string id, Severity s, string category, string title)
    {
        var d = new DiagnosticDescriptor(id, s, category, title);
        s_all.Add(d);
        return d;
    }

    /// <summary>All descriptors, in ID order.</summary>
    public static IReadOnlyList<DiagnosticDescriptor> All => s_all;

    // Syntax
    /// <summary>The text does not follow the grammar.</summary>
    public static readonly DiagnosticDescriptor SyntaxError = D("MIX0001", Severity.Error, "Syntax", "Syntax error");
    /// <summary>A string literal is not closed before the end of the line.</summary>
    public static readonly DiagnosticDescriptor UnterminatedString = D("MIX0002", Severity.Error, "Syntax", "Unterminated string");
    /// <summary>A number literal does not fit.</summary>
    public static readonly DiagnosticDescriptor NumberOutOfRange = D("MIX0003", Severity.Error, "Syntax", "Number out of range");
    /// <summary>Brackets nest deeper than the parser allows.</summary>
    public static readonly DiagnosticDescriptor NestingTooDeep = D("MIX0004", Severity.Error, "Syntax", "Nesting too deep");
    /// <summary>A character that cannot start any token.</summary>
    public static readonly DiagnosticDescriptor InvalidCharacter = D("MIX0005", Severity.Error, "Syntax", "Invalid character");

    // Names
    /// <summary>A name that is not a parameter, layer, local, definition or built-in.</summary>
    public static readonly DiagnosticDescriptor UnknownName = D("MIX0101", Severity.Error, "Names", "Unknown name");
    /// <summary>Two definitions with one name.</summary>
    public static readonly DiagnosticDescriptor DuplicateDefinition = D("MIX0102", Severity.Error, "Names", "Duplicate definition");
    /// <summary>Two parameters with one name.</summary>
    public static readonly DiagnosticDescriptor DuplicateParameter = D("MIX0103", Severity.Error, "Names", "Duplicate parameter");
    /// <summary>An imported file is not in the set of .mix files.</summary>
    public static readonly DiagnosticDescriptor ImportNotFound = D("MIX0104", Severity.Error, "Names", "Import not found");
    /// <summary>Files import each other in a cycle.</summary>
    public static readonly DiagnosticDescriptor ImportCycle = D("MIX0105", Severity.Error, "Names", "Import cycle");
    /// <summary>A definition uses itself, directly or through others.</summary>
    public static readonly DiagnosticDescriptor Recursion = D("MIX0106", Severity.Error, "Names", "Recursive definition");
    /// <summary>A layer name is declared twice in one body (it would be one state-dict key).</summary>
    public static readonly DiagnosticDescriptor DuplicateLayer = D("MIX0107", Severity.Error, "Names", "Duplicate layer name");
    /// <summary>An annotation that does not exist or has wrong arguments.</summary>
    public static readonly DiagnosticDescriptor BadAnnotation = D("MIX0108", Severity.Error, "Names", "Invalid annotation");
    /// <summary>A layer is declared but never applied.</summary>
    public static readonly DiagnosticDescriptor UnusedLayer = D("MIX0109", Severity.Warning, "Names", "Unused layer");
    /// <summary>A type name that is neither built-in nor an enum.</summary>
    public static readonly DiagnosticDescriptor UnknownType = D("MIX0110", Severity.Error, "Names", "Unknown type");
    /// <summary><c>state(...)</c> outside the body of a mixer definition (only a mixer gets a decoding-cache slot).</summary>
    public static readonly DiagnosticDescriptor StateOutsideMixer = D("MIX0111", Severity.Error, "Names", "State outside a mixer");
    /// <summary>A declared state that no later binding updates: decoding would carry it unchanged.</summary>
    public static readonly DiagnosticDescriptor StateNeverUpdated = D("MIX0112", Severity.Warning, "Names", "State never updated");
    /// <summary><c>@tied</c> names a weight the layer does not have, or a key no earlier layer of the definition has.</summary>
    public static readonly DiagnosticDescriptor UnknownTiedWeight = D("MIX0130", Severity.Error, "Names", "Unknown tied weight");

    // Arguments
    /// <summary>A named argument the callee does not have.</summary>
    public static readonly DiagnosticDescriptor UnknownArgument = D("MIX0201", Severity.Error, "Arguments", "Unknown argument");
    /// <summary>A required parameter without an argument where a complete layer is needed.</summary>
    public static readonly DiagnosticDescriptor MissingArgument = D("MIX0202", Severity.Error, "Arguments", "Missing argument");
    /// <summary>One parameter given twice.</summary>
    public static readonly DiagnosticDescriptor DuplicateArgument = D("MIX0203", Severity.Error, "Arguments", "Duplicate argument");
    /// <summary>A value of the wrong type.</summary>
    public static readonly DiagnosticDescriptor WrongType = D("MIX0204", Severity.Error, "Arguments", "Wrong type");
    /// <summary>A value outside its allowed range (odd kernel sizes, positive depths, probabilities...).</summary>
    public static readonly DiagnosticDescriptor OutOfRange = D("MIX0205", Severity.Error, "Arguments", "Value out of range");
    /// <summary>A dimension that must divide another does not (heads into dim, groups into channels).</summary>
    public static readonly DiagnosticDescriptor NotDivisible = D("MIX0206", Severity.Error, "Arguments", "Not divisible");
    /// <summary>More positional arguments than parameters.</summary>
    public static readonly DiagnosticDescriptor TooManyArguments = D("MIX0207", Severity.Error, "Arguments", "Too many arguments");
    /// <summary>Something applied that cannot be applied that way.</summary>
    public static readonly DiagnosticDescriptor NotApplicable = D("MIX0208", Severity.Error, "Arguments", "Cannot apply");
    /// <summary>A model parameter needs a default so the model can be built.</summary>
    public static readonly DiagnosticDescriptor ModelParameterNeedsDefault = D("MIX0209", Severity.Error, "Arguments", "Model parameter without default");
    /// <summary>An initializer (<c>zeros</c>, <c>normal(...)</c>) outside a <c>param</c>/<c>buffer</c> init, where it would have no shape.</summary>
    public static readonly DiagnosticDescriptor InitOutsideParam = D("MIX0220", Severity.Error, "Arguments", "Initializer outside param or buffer");

    // Shapes
    /// <summary>An elementwise operation on tensors whose shapes do not broadcast.</summary>
    public static readonly DiagnosticDescriptor ShapeMismatch = D("MIX0301", Severity.Error, "Shapes", "Shape mismatch");
    /// <summary>A layer receives a tensor whose shape its signature rejects.</summary>
    public static readonly DiagnosticDescriptor InputShapeMismatch = D("MIX0302", Severity.Error, "Shapes", "Input shape mismatch");
    /// <summary>A body returns a shape other than its declared output.</summary>
    public static readonly DiagnosticDescriptor OutputShapeMismatch = D("MIX0303", Severity.Error, "Shapes", "Output shape mismatch");
    /// <summary>Repeating a layer whose output shape differs from its input shape.</summary>
    public static readonly DiagnosticDescriptor RepeatChangesShape = D("MIX0304", Severity.Error, "Shapes", "Repeated layer changes shape");
    /// <summary>A dimension works out to a fraction.</summary>
    public static readonly DiagnosticDescriptor FractionalDimension = D("MIX0305", Severity.Error, "Shapes", "Fractional dimension");
    /// <summary>An axis, reshape or flatten that does not fit the tensor.</summary>
    public static readonly DiagnosticDescriptor BadAxis = D("MIX0306", Severity.Error, "Shapes", "Invalid axis or reshape");
    /// <summary>Split sizes that do not add up to the dimension.</summary>
    public static readonly DiagnosticDescriptor SplitMismatch = D("MIX0307", Severity.Error, "Shapes", "Split sizes mismatch");
    /// <summary>Concatenated tensors that differ outside the concatenation axis.</summary>
    public static readonly DiagnosticDescriptor ConcatMismatch = D("MIX0308", Severity.Error, "Shapes", "Concat shape mismatch");
    /// <summary>A tensor of the wrong element type (e.g. float ids into an embedding).</summary>
    public static readonly DiagnosticDescriptor DtypeMismatch = D("MIX0309", Severity.Error, "Shapes", "Element type mismatch");
    /// <summary>An einsum letter bound to two different sizes.</summary>
    public static readonly DiagnosticDescriptor EinsumSizeMismatch = D("MIX0320", Severity.Error, "Shapes", "Einsum size mismatch");
    /// <summary>An einsum spec that does not parse or does not fit its operands.</summary>
    public static readonly DiagnosticDescriptor BadEinsumSpec = D("MIX0321", Severity.Error, "Shapes", "Invalid einsum spec");
    /// <summary><c>@tied</c> shares a weight whose shape differs from the layer's own.</summary>
    public static readonly DiagnosticDescriptor TiedShapeMismatch = D("MIX0330", Severity.Error, "Shapes", "Tied weight shape mismatch");
    /// <summary>The update of a state (a later binding of its name) has another shape or element type than its declaration.</summary>
    public static readonly DiagnosticDescriptor StateShapeMismatch = D("MIX0331", Severity.Error, "Shapes", "State update shape mismatch");
    /// <summary>A state whose first axis is not the batch axis of the mixer's first input, or whose other sizes depend on
    /// the input's shape rather than on the mixer's parameters.</summary>
    public static readonly DiagnosticDescriptor StateNotBatchFirst = D("MIX0332", Severity.Error, "Shapes", "State not batch-first");

    // Flow
    /// <summary>A body that computes on tensors but never returns.</summary>
    public static readonly DiagnosticDescriptor MissingReturn = D("MIX0401", Severity.Error, "Flow", "Missing return");
    /// <summary>A value of the wrong kind where a tensor, layer or number is needed.</summary>
    public static readonly DiagnosticDescriptor WrongKind = D("MIX0402", Severity.Error, "Flow", "Wrong kind of value");
    /// <summary>A loop or repeat count that is not known when the model is built.</summary>
    public static readonly DiagnosticDescriptor UnknownBound = D("MIX0403", Severity.Error, "Flow", "Unknown loop bound");
    /// <summary>An array index outside the array.</summary>
    public static readonly DiagnosticDescriptor IndexOutOfRange = D("MIX0404", Severity.Error, "Flow", "Index out of range");
    /// <summary>A definition without a signature where one is required.</summary>
    public static readonly DiagnosticDescriptor MissingSignature = D("MIX0405", Severity.Error, "Flow", "Missing signature");
    /// <summary>A model too large to check within the checker's limits.</summary>
    public static readonly DiagnosticDescriptor TooLarge = D("MIX0406", Severity.Error, "Flow", "Too large to check");
    /// <summary>A value past the checker's size budget: a dimension with too many terms or too high a degree, a long string.</summary>
    public static readonly DiagnosticDescriptor ValueTooLarge = D("MIX0407", Severity.Error, "Flow", "Value too large");

    // Internal
    /// <summary>A bug in the checker, reported instead of thrown. Please file it with the input.</summary>
    public static readonly DiagnosticDescriptor InternalError = D("MIX0999", Severity.Error, "Internal", "Internal checker error");
}
