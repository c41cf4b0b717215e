import type { PhotoResponse } from '../routes/mappers.ts';
import { html } from './html.ts';
import type { PageContext } from './layout.ts';
import { csrfField, layout } from './layout.ts';

const card = (p: PhotoResponse) => {
  const img =
    p.status === 'ready' && p.variants.thumb && p.sizes.thumb
      ? html`<img src="${p.variants.thumb}" width="${p.sizes.thumb.width}" height="${p.sizes.thumb.height}" alt="${p.caption || `photo by ${p.owner}`}" loading="lazy">`
      : html`<div class="placeholder">${p.status === 'failed' ? 'processing failed' : 'processing…'}</div>`;
  return html`<article class="card" data-photo-id="${p.id}" data-status="${p.status}">
  <a href="/p/${p.id}">${img}</a>
  <p><a href="/u/${p.owner}">@${p.owner}</a> ${p.caption}</p>
  <p class="meta"><span class="likes">${p.likeCount} ${p.likeCount === 1 ? 'like' : 'likes'}</span></p>
</article>`;
};

const more = (path: string, cursor: string | null) =>
  cursor ? html`<p><a class="more" href="${path}?cursor=${encodeURIComponent(cursor)}">Older photos</a></p>` : '';

export const landingPage = (ctx: PageContext) =>
  layout(
    ctx,
    'Welcome',
    html`<section class="hero"><h1>Share photos with the people you follow</h1>
<p><a class="button" href="/signup">Sign up</a> or <a href="/login">log in</a>.</p></section>`,
  );

export const feedPage = (ctx: PageContext, items: PhotoResponse[], nextCursor: string | null) =>
  layout(
    ctx,
    'Feed',
    html`<h1>Your feed</h1>
${items.length === 0 ? html`<p>Nothing yet. <a href="/upload">Upload a photo</a> or <a href="/people">find people to follow</a>.</p>` : ''}
<div class="grid">${items.map(card)}</div>${more('/', nextCursor)}`,
  );

export const credentialsPage = (ctx: PageContext, kind: 'signup' | 'login', username = '') =>
  layout(
    ctx,
    kind === 'signup' ? 'Sign up' : 'Log in',
    html`<h1>${kind === 'signup' ? 'Sign up' : 'Log in'}</h1>
<form method="post" action="/${kind}" class="stack">${csrfField(ctx)}
<label>Username <input name="username" value="${username}" required autocomplete="username"
  ${kind === 'signup' ? html`pattern="[a-z0-9_]{3,30}" title="3–30 characters: a-z, 0-9, _"` : ''}></label>
<label>Password <input name="password" type="password" required
  ${kind === 'signup' ? html`minlength="10" autocomplete="new-password"` : html`autocomplete="current-password"`}></label>
<button type="submit">${kind === 'signup' ? 'Create account' : 'Log in'}</button>
</form>`,
  );

export const uploadPage = (ctx: PageContext) =>
  layout(
    ctx,
    'Upload',
    html`<h1>Upload a photo</h1>
<form method="post" action="/upload" enctype="multipart/form-data" class="stack">${csrfField(ctx)}
<label>Caption <input name="caption" maxlength="2000"></label>
<label>Photo <input name="file" type="file" accept="image/jpeg,image/png,image/webp,image/avif,image/gif" required></label>
<button type="submit">Upload</button>
</form>`,
  );

export interface ProfileView {
  username: string;
  followerCount: number;
  followingCount: number;
  photoCount: number;
  following: boolean | undefined;
}

export const profilePage = (ctx: PageContext, user: ProfileView, items: PhotoResponse[], nextCursor: string | null) => {
  const own = ctx.viewer?.username === user.username;
  const follow =
    ctx.viewer && !own
      ? html`<form method="post" action="/u/${user.username}/${user.following ? 'unfollow' : 'follow'}">${csrfField(ctx)}
<button type="submit" class="follow">${user.following ? 'Unfollow' : 'Follow'}</button></form>`
      : '';
  return layout(
    ctx,
    `@${user.username}`,
    html`<h1>@${user.username}</h1>
<p class="counts"><span class="followers">${user.followerCount} followers</span> · <span class="following">${user.followingCount} following</span> · <span class="photos">${user.photoCount} photos</span></p>
${follow}
<div class="grid">${items.map(card)}</div>${more(`/u/${user.username}`, nextCursor)}`,
  );
};

export const photoPage = (ctx: PageContext, p: PhotoResponse) => {
  const image =
    p.status === 'ready' && p.variants.display && p.sizes.display
      ? html`<img class="display" src="${p.variants.display}" width="${p.sizes.display.width}" height="${p.sizes.display.height}" alt="${p.caption || `photo by ${p.owner}`}">`
      : html`<div class="placeholder">${p.status === 'failed' ? 'Processing failed.' : 'Processing… this page refreshes.'}</div>`;
  const like =
    ctx.viewer && p.status === 'ready'
      ? html`<form method="post" action="/p/${p.id}/${p.likedByMe ? 'unlike' : 'like'}" class="inline">${csrfField(ctx)}
<button type="submit" class="like">${p.likedByMe ? 'Unlike' : 'Like'}</button></form>`
      : '';
  const remove =
    ctx.viewer?.username === p.owner
      ? html`<form method="post" action="/p/${p.id}/delete" class="inline">${csrfField(ctx)}<button type="submit" class="danger">Delete</button></form>`
      : '';
  return layout(
    ctx,
    p.caption || 'Photo',
    html`<figure>${image}<figcaption><a href="/u/${p.owner}">@${p.owner}</a> ${p.caption}</figcaption></figure>
<p class="meta"><span class="likes">${p.likeCount} ${p.likeCount === 1 ? 'like' : 'likes'}</span> ${like} ${remove}</p>`,
    p.status === 'processing' ? html`<meta http-equiv="refresh" content="2">` : undefined,
  );
};

export const errorPage = (ctx: PageContext, status: number, message: string, requestId: string) =>
  layout(
    ctx,
    `Error ${status}`,
    html`<h1>${status}</h1><p>${message}</p><p class="meta">Request id: <code>${requestId}</code></p>`,
  );

export interface PersonView {
  username: string;
  followerCount: number;
  following?: boolean;
  self?: boolean;
  recentlyActive?: boolean;
}

/** A person's line: a Follow (or Unfollow) button for a logged-in viewer, which comes back to this page. */
const personList = (ctx: PageContext, people: PersonView[], back: string) =>
  html`<ul class="people">${people.map(
    (p) =>
      html`<li><a href="/u/${p.username}">@${p.username}</a> <span class="meta">${p.followerCount} ${p.followerCount === 1 ? 'follower' : 'followers'}${p.recentlyActive ? ', recently active' : ''}</span>${
        ctx.viewer && !p.self && ctx.viewer.username !== p.username
          ? html` <form method="post" action="/u/${p.username}/${p.following ? 'unfollow' : 'follow'}" class="inline">${csrfField(ctx)}<input type="hidden" name="_return" value="${back}"><button type="submit" class="follow">${p.following ? 'Unfollow' : 'Follow'}</button></form>`
          : ''
      }</li>`,
  )}</ul>`;

export const peoplePage = (ctx: PageContext, q: string, found: PersonView[] | null, suggested: PersonView[]) =>
  layout(
    ctx,
    'People',
    html`<h1>Find people</h1>
<form method="get" action="/people" class="inline">
<label>Username starts with <input name="q" value="${q}" pattern="[a-z0-9_]{1,30}" maxlength="30" autocomplete="off"></label>
<button type="submit">Search</button>
</form>
${found === null ? '' : found.length === 0 ? html`<p>Nobody's username starts with “${q}”.</p>` : personList(ctx, found, q ? `/people?q=${q}` : '/people')}
<h2>Most followed${ctx.viewer ? ' that you do not follow yet' : ''}</h2>
${
  suggested.length === 0
    ? html`<p>Nobody to suggest yet.</p>`
    : html`${suggested.some((p) => p.recentlyActive) ? html`<p class="meta">Too few people are followed yet: after them, recently active accounts.</p>` : ''}${personList(ctx, suggested, q ? `/people?q=${q}` : '/people')}`
}`,
  );
