namespace Attribution.Attribution;
internal static class ProjectMarker { }
