using System.Globalization;
using System.Security;
using System.Text;

namespace Attribution.Cli.Evaluation;

/// <summary>Small, dependency-free SVG charts for benchmark reports (bar charts and scatter plots).</summary>
internal static class Svg
{
    private const int Width = 640, Height = 400, Left = 70, Right = 20, Top = 40, Bottom = 110;
    private static readonly string[] Palette = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD"];

    /// <summary>Vertical bars with optional ± error bars and an optional dashed reference line (e.g. the noise ceiling).</summary>
    public static string BarChart(string title, string yLabel, IReadOnlyList<(string Label, double Value, double Error)> bars,
        (string Label, double Value)? reference = null, bool logScale = false)
    {
        var sb = Begin(title);
        var finite = bars.Where(b => double.IsFinite(b.Value)).ToList();
        double hi = finite.Count == 0 ? 1 : finite.Max(b => b.Value + (double.IsFinite(b.Error) ? b.Error : 0));
        double lo = finite.Count == 0 ? 0 : Math.Min(0, finite.Min(b => b.Value - (double.IsFinite(b.Error) ? b.Error : 0)));
        if (reference is { } r && double.IsFinite(r.Value))
        {
            hi = Math.Max(hi, r.Value);
        }

        Func<double, double> map;
        if (logScale)
        {
            double min = finite.Where(b => b.Value > 0).Select(b => b.Value).DefaultIfEmpty(1e-3).Min();
            double lmin = Math.Floor(Math.Log10(min)), lmax = Math.Ceiling(Math.Log10(Math.Max(hi, min * 10)));
            map = v => Y(Math.Log10(Math.Max(v, Math.Pow(10, lmin))), lmin, lmax);
            for (double e = lmin; e <= lmax; e++)
            {
                Tick(sb, map(Math.Pow(10, e)), Fmt(Math.Pow(10, e)));
            }
        }
        else
        {
            hi = hi <= lo ? lo + 1 : hi * 1.1;
            double top = hi;
            map = v => Y(v, lo, top);
            foreach (var t in Ticks(lo, hi))
            {
                Tick(sb, map(t), Fmt(t));
            }
        }

        Axes(sb, yLabel);
        double slot = (Width - Left - Right) / (double)Math.Max(1, bars.Count);
        for (int k = 0; k < bars.Count; k++)
        {
            var (label, value, error) = bars[k];
            double x = Left + (k * slot) + (slot * 0.15), w = slot * 0.7, cx = x + (w / 2);
            if (double.IsFinite(value))
            {
                double y0 = logScale ? Height - Bottom : map(0), y1 = map(value);
                sb.Append(CultureInfo.InvariantCulture, $"<rect x=\"{x:F1}\" y=\"{Math.Min(y0, y1):F1}\" width=\"{w:F1}\" height=\"{Math.Abs(y1 - y0):F1}\" fill=\"{Palette[k % Palette.Length]}\"/>\n");
                if (double.IsFinite(error) && error > 0 && !logScale)
                {
                    sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{cx:F1}\" x2=\"{cx:F1}\" y1=\"{map(value - error):F1}\" y2=\"{map(value + error):F1}\" stroke=\"black\"/>\n");
                }

                sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{cx:F1}\" y=\"{Math.Min(y0, y1) - 4:F1}\" font-size=\"10\" text-anchor=\"middle\">{Fmt(value)}</text>\n");
            }

            sb.Append(CultureInfo.InvariantCulture, $"<text transform=\"translate({cx:F1},{Height - Bottom + 12}) rotate(35)\" font-size=\"11\">{Escape(label)}</text>\n");
        }

        if (reference is { } refLine && double.IsFinite(refLine.Value))
        {
            double y = map(refLine.Value);
            sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" x2=\"{Width - Right}\" y1=\"{y:F1}\" y2=\"{y:F1}\" stroke=\"#C44E52\" stroke-dasharray=\"6,4\"/>\n");
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Width - Right - 4}\" y=\"{y - 4:F1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#C44E52\">{Escape(refLine.Label)} {Fmt(refLine.Value)}</text>\n");
        }

        return End(sb);
    }

    /// <summary>Scatter of (x, y) points with least-squares fit line; axis ranges fit the data.</summary>
    public static string Scatter(string title, string xLabel, string yLabel, IReadOnlyList<(double X, double Y)> points, string? note = null)
    {
        var sb = Begin(title);
        var pts = points.Where(p => double.IsFinite(p.X) && double.IsFinite(p.Y)).ToList();
        double xmin = pts.Count == 0 ? 0 : pts.Min(p => p.X), xmax = pts.Count == 0 ? 1 : pts.Max(p => p.X);
        double ymin = pts.Count == 0 ? 0 : pts.Min(p => p.Y), ymax = pts.Count == 0 ? 1 : pts.Max(p => p.Y);
        Pad(ref xmin, ref xmax);
        Pad(ref ymin, ref ymax);
        double X(double v) => Left + ((v - xmin) / (xmax - xmin) * (Width - Left - Right));
        foreach (var t in Ticks(ymin, ymax))
        {
            Tick(sb, Y(t, ymin, ymax), Fmt(t));
        }

        foreach (var t in Ticks(xmin, xmax))
        {
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{X(t):F1}\" y=\"{Height - Bottom + 16}\" font-size=\"10\" text-anchor=\"middle\">{Fmt(t)}</text>\n");
        }

        Axes(sb, yLabel);
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{(Left + Width - Right) / 2}\" y=\"{Height - Bottom + 36}\" font-size=\"12\" text-anchor=\"middle\">{Escape(xLabel)}</text>\n");
        foreach (var (x, y) in pts)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<circle cx=\"{X(x):F1}\" cy=\"{Y(y, ymin, ymax):F1}\" r=\"2.5\" fill=\"#4C72B0\" fill-opacity=\"0.6\"/>\n");
        }

        if (pts.Count > 1)
        {
            double mx = pts.Average(p => p.X), my = pts.Average(p => p.Y);
            double sxx = pts.Sum(p => (p.X - mx) * (p.X - mx)), sxy = pts.Sum(p => (p.X - mx) * (p.Y - my));
            if (sxx > 0)
            {
                double b = sxy / sxx, a = my - (b * mx);
                sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{X(xmin):F1}\" y1=\"{Y(a + (b * xmin), ymin, ymax):F1}\" x2=\"{X(xmax):F1}\" y2=\"{Y(a + (b * xmax), ymin, ymax):F1}\" stroke=\"#C44E52\"/>\n");
            }
        }

        if (note is not null)
        {
            sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left + 8}\" y=\"{Top + 14}\" font-size=\"12\">{Escape(note)}</text>\n");
        }

        return End(sb);
    }

    private static StringBuilder Begin(string title)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Width}\" height=\"{Height}\" viewBox=\"0 0 {Width} {Height}\" font-family=\"sans-serif\">\n");
        sb.Append(CultureInfo.InvariantCulture, $"<rect width=\"{Width}\" height=\"{Height}\" fill=\"white\"/>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Width / 2}\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">{Escape(title)}</text>\n");
        return sb;
    }

    private static string End(StringBuilder sb) => sb.Append("</svg>\n").ToString();

    private static void Axes(StringBuilder sb, string yLabel)
    {
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Top}\" x2=\"{Left}\" y2=\"{Height - Bottom}\" stroke=\"black\"/>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left}\" y1=\"{Height - Bottom}\" x2=\"{Width - Right}\" y2=\"{Height - Bottom}\" stroke=\"black\"/>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text transform=\"translate(16,{(Top + Height - Bottom) / 2}) rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">{Escape(yLabel)}</text>\n");
    }

    private static void Tick(StringBuilder sb, double y, string label)
    {
        sb.Append(CultureInfo.InvariantCulture, $"<line x1=\"{Left - 4}\" x2=\"{Width - Right}\" y1=\"{y:F1}\" y2=\"{y:F1}\" stroke=\"#e0e0e0\"/>\n");
        sb.Append(CultureInfo.InvariantCulture, $"<text x=\"{Left - 6}\" y=\"{y + 4:F1}\" font-size=\"10\" text-anchor=\"end\">{label}</text>\n");
    }

    private static double Y(double v, double lo, double hi) => Height - Bottom - ((v - lo) / (hi - lo) * (Height - Bottom - Top));

    private static void Pad(ref double lo, ref double hi)
    {
        if (hi <= lo)
        {
            lo -= 1;
            hi += 1;
            return;
        }

        double pad = (hi - lo) * 0.05;
        lo -= pad;
        hi += pad;
    }

    private static IEnumerable<double> Ticks(double lo, double hi)
    {
        double raw = (hi - lo) / 5, mag = Math.Pow(10, Math.Floor(Math.Log10(raw))), step = mag;
        foreach (var f in new[] { 1.0, 2.0, 5.0, 10.0 })
        {
            step = f * mag;
            if (raw <= step)
            {
                break;
            }
        }

        for (double t = Math.Ceiling(lo / step) * step; t <= hi + 1e-12; t += step)
        {
            yield return Math.Abs(t) < step * 1e-9 ? 0 : t;
        }
    }

    private static string Fmt(double v) => Math.Abs(v) >= 1000 || (Math.Abs(v) < 0.01 && v != 0)
        ? v.ToString("G3", CultureInfo.InvariantCulture)
        : v.ToString("0.###", CultureInfo.InvariantCulture);

    private static string Escape(string s) => SecurityElement.Escape(s) ?? string.Empty;
}
