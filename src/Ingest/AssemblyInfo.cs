namespace Attribution.Ingest;
internal static class ProjectMarker { }
