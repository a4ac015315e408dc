/* A small SVG line plot for loss curves: no plotting dependency, and the
 * file opens in any browser. */
#include "cli.h"

#include <math.h>
#include <stdio.h>

static double nice_step(double range)
{
    double e = pow(10, floor(log10(range / 5))), f = range / 5 / e;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * e;
}

int cli_plot_svg(const char *path, const char *title, const cli_series *s, int n_series)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < n_series; k++)
        for (size_t i = 0; i < s[k].n; i++) {
            x0 = fmin(x0, s[k].x[i]), x1 = fmax(x1, s[k].x[i]);
            y0 = fmin(y0, s[k].y[i]), y1 = fmax(y1, s[k].y[i]);
        }
    if (!(x0 <= x1)) return -1; /* no points */
    if (x1 == x0) x1 = x0 + 1;
    if (y1 == y0) y1 = y0 + 1;
    const double W = 720, H = 420, L = 70, R = 20, T = 40, B = 50;
    const double ys = nice_step(y1 - y0), xs = nice_step(x1 - x0);
    y0 = floor(y0 / ys) * ys, y1 = ceil(y1 / ys) * ys;
    FILE *f = fopen(path, "w");
    if (!f) return -1;
#define PX(v) (L + ((v) - x0) / (x1 - x0) * (W - L - R))
#define PY(v) (H - B - ((v) - y0) / (y1 - y0) * (H - T - B))
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
            W, H);
    fprintf(f, "<text x=\"%g\" y=\"22\" font-size=\"15\">%s</text>\n", L, title);
    for (double v = y0; v <= y1 + ys / 2; v += ys)
        fprintf(f, "<line x1=\"%g\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                   "<text x=\"%g\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                L, W - R, PY(v), PY(v), L - 6, PY(v) + 4, v);
    for (double v = ceil(x0 / xs) * xs; v <= x1; v += xs)
        fprintf(f, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%g</text>\n", PX(v), H - B + 18, v);
    fprintf(f, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">step</text>\n", (L + W - R) / 2, H - 12);
    fprintf(f, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#333\"/>\n", L, T,
            W - L - R, H - T - B);
    static const char *const colors[] = { "#1f77b4", "#d62728", "#2ca02c" };
    for (int k = 0; k < n_series; k++) {
        const char *c = colors[k % 3];
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", c);
        for (size_t i = 0; i < s[k].n; i++) fprintf(f, "%.1f,%.1f ", PX(s[k].x[i]), PY(s[k].y[i]));
        fprintf(f, "\"/>\n<text x=\"%g\" y=\"%d\" fill=\"%s\">%s</text>\n", W - R - 140, (int)T + 18 + 16 * k, c,
                s[k].name);
    }
#undef PX
#undef PY
    fputs("</svg>\n", f);
    return fclose(f) == 0 ? 0 : -1;
}
