namespace Mix.Runtime { internal static class AssemblyMarker { } }
