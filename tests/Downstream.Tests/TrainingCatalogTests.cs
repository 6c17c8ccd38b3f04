using Attribution.Engine.Data;

namespace Attribution.Downstream.Tests;

public sealed class TrainingCatalogTests
{
    [Fact]
    public void Catalog_of_a_language_model_run_previews_documents_as_text_snippets()
    {
        var dir = Directory.CreateTempSubdirectory("catalog-");
        try
        {
            File.WriteAllText(Path.Combine(dir.FullName, "run.json"), """{"recipe": {"corpus": "fortunes", "steps": 10}}""");
            var catalog = TrainingCatalog.Load(dir.FullName);
            var corpus = TextCorpus.Load("fortunes");
            var doc = corpus.Documents[3];
            var expected = corpus.Text(3).Trim();
            var byIndex = catalog.Preview(3)!;
            var byId = catalog.Preview(doc.Id)!;
            Assert.Null(byIndex.Pixels);
            Assert.StartsWith(expected[..Math.Min(expected.Length, 100)], byIndex.Text, StringComparison.Ordinal);
            Assert.Equal(byIndex.Text, byId.Text);
            Assert.Null(catalog.Preview(-1));
            Assert.Equal("source 7", catalog.SourceName(7)); // no sources.json
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
