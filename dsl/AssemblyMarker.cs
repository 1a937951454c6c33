namespace Mix.Dsl { internal static class AssemblyMarker { } }
