namespace Attribution.Arrow;
internal static class ProjectMarker { }
