// The evaluation report as one static HTML page: the settings, per-category counts, and per prompt
// its thumbnails (first and middle frame), text, time and a link to the video. No scripts, no
// external resources; every text is escaped.
import type { EvalReport } from './index.js';

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** A relative path as an href (each segment percent-encoded). */
function href(relative: string): string {
  return relative.split('/').map(encodeURIComponent).join('/');
}

export function renderReportHtml(report: EvalReport): string {
  const e = escapeHtml;
  const config = Object.entries(report.config)
    .map(([key, value]) => `<tr><th>${e(key)}</th><td>${e(typeof value === 'string' ? value : JSON.stringify(value))}</td></tr>`)
    .join('\n');
  const sections = report.categories
    .map((category) => {
      const rows = report.entries
        .filter((entry) => entry.category === category.name)
        .map((entry) => {
          const frames = (entry.thumbnails ?? []).map((t) => `<img src="${href(t)}" alt="${e(`${entry.id} ${t.includes('middle') ? 'middle' : 'first'} frame`)}" loading="lazy">`);
          const preview = entry.preview ? [`<img src="${href(entry.preview)}" alt="${e(`${entry.id} last live preview`)}" title="last live preview (latents through the preview map)" loading="lazy">`] : [];
          const thumbs = [...frames, ...preview].join('');
          const result = entry.status === 'done' && entry.video ? `<a href="${href(entry.video)}">${e(entry.video)}</a>` : `<span class="failed">failed: ${e(entry.error ?? 'unknown error')}</span>`;
          return `<tr><td>${e(entry.id)}</td><td class="thumbs">${thumbs}</td><td>${e(entry.prompt)}</td><td>${entry.seconds.toFixed(1)} s</td><td>${e(entry.seed)}</td><td>${result}</td></tr>`;
        })
        .join('\n');
      return `<h2>${e(category.name)} <small>${category.done} / ${category.prompts} done${category.failed ? `, ${category.failed} failed` : ''}</small></h2>
<table class="entries"><thead><tr><th>id</th><th>frames</th><th>prompt</th><th>time</th><th>seed</th><th>video</th></tr></thead>
<tbody>
${rows || '<tr><td colspan="6">nothing generated yet</td></tr>'}
</tbody></table>`;
    })
    .join('\n');
  const t = report.totals;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>stepvideo evaluation</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; }
table { border-collapse: collapse; margin-bottom: 1.5em; }
td, th { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
.thumbs img { height: 96px; margin-right: 4px; }
.failed { color: #b00; }
small { font-weight: normal; color: #555; }
</style></head>
<body>
<h1>stepvideo evaluation</h1>
<p>${t.done} of ${t.prompts} prompts done${t.failed ? `, ${t.failed} failed` : ''}; ${t.seconds.toFixed(1)} s of generation. Updated ${e(report.updatedAt)}.</p>
<p>Prompts: ${e(report.promptsFile)}${report.categoriesFile ? `; categories: ${e(report.categoriesFile)}` : ''}</p>
<h2>Settings</h2>
<table>
${config}
</table>
${sections}
</body></html>
`;
}
