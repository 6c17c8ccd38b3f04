namespace Attribution.Transport;
internal static class ProjectMarker { }
