namespace Attribution.Scorer;
internal static class ProjectMarker { }
