using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Reflection;
using Microsoft.CodeAnalysis;
using Xunit;

namespace Mix.Generator.Tests;

/// <summary>
/// Every diagnostic's help link (front end and generator) is an absolute URL under <see cref="HelpLinks.BaseUrl"/> whose
/// page exists in docs/ and whose fragment is the anchor GitHub gives one of that page's headings.
/// </summary>
public class HelpLinkTests
{
    static IEnumerable<DiagnosticDescriptor> AllDescriptors()
    {
        var generator = typeof(MixGenerator).Assembly.GetType("Mix.Generator.Descriptors", throwOnError: true)!
            .GetFields(BindingFlags.Public | BindingFlags.Static)
            .Where(f => f.FieldType == typeof(DiagnosticDescriptor))
            .Select(f => (DiagnosticDescriptor)f.GetValue(null)!);
        return FrontEndDescriptors.All.Concat(generator);
    }

    static HashSet<string> Anchors(string page) =>
        File.ReadLines(Path.Combine(Harness.RepoRoot(), page))
            .Where(l => l.StartsWith("#", StringComparison.Ordinal))
            .Select(l => HelpLinks.Anchor(l.TrimStart('#')))
            .ToHashSet(StringComparer.Ordinal);

    [Fact]
    public void Every_help_link_is_absolute_and_lands_on_a_heading()
    {
        var pages = new Dictionary<string, HashSet<string>>(StringComparer.Ordinal);
        var descriptors = AllDescriptors().ToList();
        Assert.Contains(descriptors, d => d.Id == "MIX0101");
        Assert.Contains(descriptors, d => d.Id == "MIX9001");
        foreach (var d in descriptors)
        {
            Assert.True(Uri.TryCreate(d.HelpLinkUri, UriKind.Absolute, out var uri), $"{d.Id}: {d.HelpLinkUri} is not absolute");
            Assert.Equal("https", uri!.Scheme);
            Assert.StartsWith(HelpLinks.BaseUrl + "docs/", d.HelpLinkUri, StringComparison.Ordinal);
            var page = d.HelpLinkUri.Substring(HelpLinks.BaseUrl.Length).Split('#')[0];
            var fragment = uri.Fragment.TrimStart('#');
            if (!pages.TryGetValue(page, out var anchors)) pages[page] = anchors = Anchors(page);
            Assert.True(anchors.Contains(fragment), $"{d.Id}: {page} has no heading with the anchor #{fragment}");
            Assert.StartsWith(d.Id.ToLowerInvariant(), fragment, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("MIX0101 Unknown name", "mix0101-unknown-name")]
    [InlineData("MIX9001", "mix9001")]
    [InlineData("Models in C# alone", "models-in-c-alone")]
    [InlineData("`[Mixer]`: a C# module as a .mix mixer", "mixer-a-c-module-as-a-mix-mixer")]
    public void Anchors_follow_GitHub(string heading, string anchor) => Assert.Equal(anchor, HelpLinks.Anchor(heading));
}
