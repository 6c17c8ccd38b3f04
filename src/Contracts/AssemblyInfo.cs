namespace Attribution.Contracts;
internal static class ProjectMarker { }
