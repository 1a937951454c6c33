using System;
using System.Collections.Generic;
using System.Linq;
using System.Text;

namespace Mix.Dsl.Semantics;

/// <summary>
/// A tensor dimension: a polynomial with rational coefficients over named symbols (<c>B</c>, <c>H</c>,
/// <c>dims[2]</c>), in canonical form so that equal dimensions compare equal (<c>H/4*4 == H</c>).
/// Concrete dimensions are constant polynomials.
/// </summary>
public sealed class Dim : IEquatable<Dim>
{
    // Monomial key: symbol names sorted and joined by '*'; "" is the constant term. Null for a constant, which is
    // by far the common case in concrete models: constants then cost no dictionary at all.
    readonly SortedDictionary<string, Rational>? _symbolic;
    readonly Rational _constant;
    readonly int _hash;

    static readonly SortedDictionary<string, Rational> Empty = new(StringComparer.Ordinal);

    SortedDictionary<string, Rational> Terms => _symbolic ?? ConstantTerms();

    SortedDictionary<string, Rational> ConstantTerms()
    {
        if (_constant.IsZero) return Empty;
        return new SortedDictionary<string, Rational>(StringComparer.Ordinal) { [""] = _constant };
    }

    Dim(Rational constant)
    {
        _constant = constant;
        _hash = constant.GetHashCode();
    }

    Dim(SortedDictionary<string, Rational> terms)
    {
        if (terms.Count == 0 || (terms.Count == 1 && terms.ContainsKey("")))
        {
            _constant = terms.TryGetValue("", out var c) ? c : Rational.Zero;
            _hash = _constant.GetHashCode();
            return;
        }
        if (terms.Count > ValueBudget.MaxTerms)
            throw new ValueTooLargeException($"a dimension with more than {ValueBudget.MaxTerms} terms is too large to check");
        _symbolic = terms;
        int h = 17;
        foreach (var kv in terms) h = h * 31 + kv.Key.GetHashCode() * 7 + kv.Value.GetHashCode();
        _hash = h;
    }

    /// <summary>A constant.</summary>
    public static Dim Const(long value) => new(new Rational(value));

    /// <summary>A rational constant.</summary>
    public static Dim Const(Rational value) => new(value);

    /// <summary>A named symbol.</summary>
    public static Dim Symbol(string name)
    {
        if (name.Length > ValueBudget.MaxSymbolLength)
            throw new ValueTooLargeException($"a dimension whose symbolic form is longer than {ValueBudget.MaxSymbolLength} characters is too large to check");
        var t = new SortedDictionary<string, Rational>(StringComparer.Ordinal) { [name] = Rational.One };
        return new Dim(t);
    }

    /// <summary>Number of terms (what arithmetic on it costs).</summary>
    internal int TermCount => _symbolic?.Count ?? 1;

    /// <summary>Whether the dimension has no symbols.</summary>
    public bool IsConstant => _symbolic is null;

    /// <summary>The constant term (the whole value when <see cref="IsConstant"/>).</summary>
    public Rational ConstantValue => _symbolic is null ? _constant : _symbolic.TryGetValue("", out var c) ? c : Rational.Zero;

    /// <summary>The value as a whole number, or null if symbolic or fractional.</summary>
    public long? AsLong => IsConstant && ConstantValue.IsInteger ? ConstantValue.Numerator : null;

    /// <summary>Every symbol that occurs.</summary>
    public IEnumerable<string> Symbols => _symbolic is null ? Array.Empty<string>() :
        Terms.Keys.Where(k => k.Length > 0).SelectMany(k => k.Split('*')).Distinct();

    /// <summary>The single symbol if the dimension is exactly one symbol with coefficient 1.</summary>
    public string? AsSymbol => _symbolic is not null && Terms.Count == 1 && !Terms.ContainsKey("") && !Terms.Keys.First().Contains("*")
        && Terms.Values.First().Equals(Rational.One) ? Terms.Keys.First() : null;

    /// <summary>If linear in <paramref name="symbol"/> (a·s + rest, rest free of s), its coefficient and rest.</summary>
    public bool TryLinearIn(string symbol, out Rational coefficient, out Dim rest)
    {
        coefficient = Rational.Zero;
        var r = new SortedDictionary<string, Rational>(StringComparer.Ordinal);
        foreach (var kv in Terms)
        {
            if (kv.Key == symbol) { coefficient = kv.Value; continue; }
            if (kv.Key.Split('*').Contains(symbol)) { rest = this; return false; }
            r[kv.Key] = kv.Value;
        }
        rest = new Dim(r);
        return !coefficient.IsZero;
    }

    /// <summary>Sum.</summary>
    public static Dim operator +(Dim a, Dim b)
    {
        if (a._symbolic is null && b._symbolic is null) return new Dim(a._constant + b._constant);
        var t = new SortedDictionary<string, Rational>(a.Terms, StringComparer.Ordinal);
        foreach (var kv in b.Terms)
        {
            var v = t.TryGetValue(kv.Key, out var e) ? e + kv.Value : kv.Value;
            if (v.IsZero) t.Remove(kv.Key); else t[kv.Key] = v;
        }
        return new Dim(t);
    }

    /// <summary>Difference.</summary>
    public static Dim operator -(Dim a, Dim b) => a + b * Const(-1);

    /// <summary>Product.</summary>
    public static Dim operator *(Dim a, Dim b)
    {
        if (a._symbolic is null && b._symbolic is null) return new Dim(a._constant * b._constant);
        if ((long)a.TermCount * b.TermCount > ValueBudget.MaxProductWork)
            throw new ValueTooLargeException($"multiplying dimensions of {a.TermCount} and {b.TermCount} terms is too large to check");
        var t = new SortedDictionary<string, Rational>(StringComparer.Ordinal);
        foreach (var x in a.Terms)
        foreach (var y in b.Terms)
        {
            var key = MulKey(x.Key, y.Key);
            var v = x.Value * y.Value;
            v = t.TryGetValue(key, out var e) ? e + v : v;
            if (v.IsZero) t.Remove(key); else t[key] = v;
        }
        return new Dim(t);
    }

    /// <summary>Exact quotient by a non-zero constant; null when the divisor is symbolic or zero.</summary>
    public Dim? DivideBy(Dim divisor)
    {
        if (!divisor.IsConstant || divisor.ConstantValue.IsZero) return null;
        var inv = Rational.One / divisor.ConstantValue;
        if (_symbolic is null) return new Dim(_constant * inv);
        var t = new SortedDictionary<string, Rational>(StringComparer.Ordinal);
        foreach (var kv in Terms) t[kv.Key] = kv.Value * inv;
        return new Dim(t);
    }

    /// <summary>
    /// Floor division as convolutions and pooling use it. Concrete: exact floor. Symbolic: the symbolic part is
    /// assumed divisible by the divisor (images are multiples of the total stride), so only the constant is floored.
    /// </summary>
    public Dim? FloorDivideBy(long divisor)
    {
        if (divisor <= 0) return null;
        var q = DivideBy(Const(divisor))!;
        if (q.IsConstant) return Const(q.ConstantValue.Floor());
        var c = q.ConstantValue;
        return q - Const(c) + Const(c.Floor());
    }

    /// <summary>Whether every coefficient is whole (a dimension that can exist).</summary>
    public bool HasIntegerCoefficients => _symbolic is null ? _constant.IsInteger : Terms.Values.All(v => v.IsInteger);

    /// <summary>Replaces symbols by dimensions.</summary>
    public Dim Substitute(IReadOnlyDictionary<string, Dim> map)
    {
        if (map.Count == 0 || _symbolic is null) return this;
        Dim result = Const(0);
        foreach (var kv in Terms)
        {
            Dim term = Const(kv.Value);
            if (kv.Key.Length > 0)
            {
                foreach (var s in kv.Key.Split('*'))
                    term = term * (map.TryGetValue(s, out var d) ? d : Symbol(s));
            }
            result = result + term;
        }
        return result;
    }

    /// <summary>The key of the product of two monomials: their sorted symbol lists merged (no splitting into arrays,
    /// which made products of large polynomials slow).</summary>
    static string MulKey(string a, string b)
    {
        if (a.Length == 0) return b;
        if (b.Length == 0) return a;
        int degree = 2;
        foreach (var c in a) if (c == '*') degree++;
        foreach (var c in b) if (c == '*') degree++;
        if (degree > ValueBudget.MaxDegree)
            throw new ValueTooLargeException($"a dimension of degree more than {ValueBudget.MaxDegree} is too large to check");
        var sb = new StringBuilder(a.Length + b.Length + 1);
        int i = 0, j = 0;
        while (i < a.Length || j < b.Length)
        {
            int ie = i < a.Length ? End(a, i) : i, je = j < b.Length ? End(b, j) : j;
            bool takeA = j >= b.Length || i < a.Length && CompareSymbols(a, i, ie, b, j, je) <= 0;
            if (sb.Length > 0) sb.Append('*');
            if (takeA) { sb.Append(a, i, ie - i); i = ie + 1; }
            else { sb.Append(b, j, je - j); j = je + 1; }
        }
        return sb.ToString();
    }

    static int End(string s, int start)
    {
        int e = s.IndexOf('*', start);
        return e < 0 ? s.Length : e;
    }

    /// <summary>Ordinal comparison of the symbols s[i..ie) and t[j..je), as sorting the names would order them.</summary>
    static int CompareSymbols(string s, int i, int ie, string t, int j, int je)
    {
        int n = Math.Min(ie - i, je - j);
        int c = string.CompareOrdinal(s, i, t, j, n);
        return c != 0 ? c : (ie - i).CompareTo(je - j);
    }

    /// <inheritdoc />
    public bool Equals(Dim? other)
    {
        if (other is null || other._hash != _hash) return false;
        if (_symbolic is null || other._symbolic is null) return _symbolic is null && other._symbolic is null && _constant.Equals(other._constant);
        if (other.Terms.Count != Terms.Count) return false;
        foreach (var kv in Terms)
            if (!other.Terms.TryGetValue(kv.Key, out var v) || !v.Equals(kv.Value)) return false;
        return true;
    }
    /// <inheritdoc />
    public override bool Equals(object? obj) => Equals(obj as Dim);
    /// <inheritdoc />
    public override int GetHashCode() => _hash;

    /// <summary>Readable form: <c>H/4</c>, <c>D*2</c>, <c>H*W</c>, <c>64</c>.</summary>
    public override string ToString()
    {
        if (_symbolic is null) return _constant.ToString();
        var sb = new StringBuilder();
        bool first = true;
        // Symbolic terms first, constant last: "H/4 + 1", not "1 + H/4".
        foreach (var kv in Terms.Where(k => k.Key.Length > 0).Concat(Terms.Where(k => k.Key.Length == 0)))
        {
            var v = kv.Value;
            bool neg = v.Numerator < 0;
            var abs = neg ? -v : v;
            if (first) sb.Append(neg ? "-" : ""); else sb.Append(neg ? " - " : " + ");
            first = false;
            if (kv.Key.Length == 0) { sb.Append(abs.ToString()); continue; }
            if (abs.Numerator != 1) sb.Append(abs.Numerator).Append('*');
            sb.Append(kv.Key);
            if (abs.Denominator != 1) sb.Append('/').Append(abs.Denominator);
        }
        return sb.ToString();
    }
}
