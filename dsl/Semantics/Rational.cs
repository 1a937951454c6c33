using System;

namespace Mix.Dsl.Semantics;

/// <summary>An exact fraction with 64-bit parts; arithmetic throws <see cref="OverflowException"/> rather than wrap.</summary>
public readonly struct Rational : IEquatable<Rational>, IComparable<Rational>
{
    /// <summary>Creates n/d in lowest terms.</summary>
    public Rational(long numerator, long denominator = 1)
    {
        if (denominator == 0) throw new DivideByZeroException();
        if (denominator < 0) { numerator = checked(-numerator); denominator = checked(-denominator); }
        long g = Gcd(Math.Abs(numerator), denominator);
        if (g > 1) { numerator /= g; denominator /= g; }
        Numerator = numerator;
        _den = denominator;
    }

    // Zero means 1 so that default(Rational) is 0/1.
    readonly long _den;

    /// <summary>Numerator (sign carried here).</summary>
    public long Numerator { get; }
    /// <summary>Denominator, always positive.</summary>
    public long Denominator => _den == 0 ? 1 : _den;

    /// <summary>Whether the value is a whole number.</summary>
    public bool IsInteger => Denominator == 1;
    /// <summary>Whether the value is zero.</summary>
    public bool IsZero => Numerator == 0;

    /// <summary>Zero.</summary>
    public static Rational Zero => new(0);
    /// <summary>One.</summary>
    public static Rational One => new(1);

    static long Gcd(long a, long b)
    {
        while (b != 0) { var t = a % b; a = b; b = t; }
        return a == 0 ? 1 : a;
    }

    /// <summary>Sum.</summary>
    public static Rational operator +(Rational a, Rational b)
    {
        long g = Gcd(a.Denominator, b.Denominator);
        long den = checked(a.Denominator / g * b.Denominator);
        long num = checked(a.Numerator * (den / a.Denominator) + b.Numerator * (den / b.Denominator));
        return new Rational(num, den);
    }
    /// <summary>Negation.</summary>
    public static Rational operator -(Rational a) => new(checked(-a.Numerator), a.Denominator);
    /// <summary>Difference.</summary>
    public static Rational operator -(Rational a, Rational b) => a + (-b);
    /// <summary>Product.</summary>
    public static Rational operator *(Rational a, Rational b)
    {
        long g1 = Gcd(Math.Abs(a.Numerator), b.Denominator), g2 = Gcd(Math.Abs(b.Numerator), a.Denominator);
        return new Rational(checked((a.Numerator / g1) * (b.Numerator / g2)), checked((a.Denominator / g2) * (b.Denominator / g1)));
    }
    /// <summary>Quotient.</summary>
    public static Rational operator /(Rational a, Rational b)
    {
        if (b.Numerator == 0) throw new DivideByZeroException();
        return a * new Rational(b.Denominator, b.Numerator);
    }
    /// <summary>Largest integer not above the value.</summary>
    public long Floor()
    {
        long q = Numerator / Denominator;
        if (Numerator % Denominator != 0 && Numerator < 0) q--;
        return q;
    }

    /// <inheritdoc />
    public bool Equals(Rational other) => Numerator == other.Numerator && Denominator == other.Denominator;
    /// <inheritdoc />
    public override bool Equals(object? obj) => obj is Rational r && Equals(r);
    /// <inheritdoc />
    public override int GetHashCode() => Numerator.GetHashCode() * 31 + Denominator.GetHashCode();
    /// <inheritdoc />
    public int CompareTo(Rational other)
    {
        // Compare a/b with c/d via decimal to avoid overflow in the common case.
        return ((decimal)Numerator / Denominator).CompareTo((decimal)other.Numerator / other.Denominator);
    }
    /// <inheritdoc />
    public override string ToString() => IsInteger ? Numerator.ToString(System.Globalization.CultureInfo.InvariantCulture)
        : $"{Numerator}/{Denominator}";
}
