import { randomUUID } from 'node:crypto';
import { html, type SafeHtml } from './html.ts';

export interface PageContext {
  viewer: { username: string } | null;
  csrf: string;
  stylesheet: string;
  flash?: string;
  /** With a CDN edge: where images fall back to, and the script that does it. */
  media?: { origin: string; script: string };
}

/** The forms' hidden field with the write's Idempotency-Key (a browser's form cannot set the header). */
export const idempotencyField = '_idempotency_key';

/**
 * A form's hidden fields: its CSRF token, and a fresh Idempotency-Key (a form
 * sent twice, by a double click or a retry after a lost answer, acts once).
 */
export const csrfField = (ctx: PageContext) =>
  html`<input type="hidden" name="_csrf" value="${ctx.csrf}"><input type="hidden" name="${idempotencyField}" value="${randomUUID()}">`;

export function layout(ctx: PageContext, title: string, body: SafeHtml, head?: SafeHtml): string {
  const nav = ctx.viewer
    ? html`<a href="/">Feed</a> <a href="/people">People</a> <a href="/upload">Upload</a> <a href="/u/${ctx.viewer.username}">@${ctx.viewer.username}</a>
      <form method="post" action="/logout" class="inline">${csrfField(ctx)}<button type="submit" class="link">Log out</button></form>`
    : html`<a href="/login">Log in</a> <a href="/signup">Sign up</a>`;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · scaleout</title>
<link rel="stylesheet" href="${ctx.stylesheet}">
<link rel="icon" href="data:,">
${
  ctx.media
    ? html`<meta name="media-origin" content="${ctx.media.origin}">
<script src="${ctx.media.script}"></script>`
    : ''
}
${head}
</head>
<body>
<header><a href="/" class="brand">scaleout</a><nav>${nav}</nav></header>
<main>
${ctx.flash ? html`<p class="flash" role="alert">${ctx.flash}</p>` : ''}
${body}
</main>
<footer><a href="/api/v1/docs">API</a></footer>
</body>
</html>`.value;
}
