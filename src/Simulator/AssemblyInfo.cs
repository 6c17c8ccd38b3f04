namespace Attribution.Simulator;
internal static class ProjectMarker { }
