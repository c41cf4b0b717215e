import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jpegWithExif, password, pngImage, startApp, type TestApp, uniqueName } from '../support/app.ts';
import { tempDir } from '../support/temp.ts';

const chromiumPath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const artifacts = path.resolve('artifacts');

let app: TestApp;
let browser: Browser;
let files: { dir: string; remove(): Promise<void> };

beforeAll(async () => {
  if (!existsSync(chromiumPath)) {
    throw new Error(`no Chromium at ${chromiumPath}: run "apt-get install -y chromium" (bash .ci/run does)`);
  }
  app = await startApp();
  files = await tempDir();
  await writeFile(path.join(files.dir, 'mine.jpg'), await jpegWithExif(1200, 900));
  await writeFile(path.join(files.dir, 'theirs.png'), await pngImage(800, 600));
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
      '--disable-sync',
    ],
  });
  await mkdir(artifacts, { recursive: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await app?.stop();
  await app?.remove();
  await files?.remove();
});

const signUp = async (page: Page, username: string) => {
  await page.goto(`${app.url}/signup`);
  await page.fill('input[name=username]', username);
  await page.fill('input[name=password]', password);
  await page.click('main button[type=submit]');
  await page.waitForURL(`${app.url}/`);
};

const upload = async (page: Page, file: string, caption: string) => {
  await page.goto(`${app.url}/upload`);
  await page.fill('input[name=caption]', caption);
  await page.setInputFiles('input[name=file]', path.join(files.dir, file));
  await page.click('main button[type=submit]');
  await page.waitForURL(/\/p\/[A-Za-z0-9_-]{16}$/);
  // The photo page refreshes itself (no JavaScript) until the variants exist.
  await page.locator('img.display').waitFor({ timeout: 15_000 });
};

/** Waits for every image on the page to have decoded pixels. */
const imagesLoaded = (page: Page, selector: string) =>
  page.waitForFunction(
    (sel) => {
      const imgs = [...document.querySelectorAll<HTMLImageElement>(sel)];
      return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
    },
    selector,
    { timeout: 10_000 },
  );

describe('in a real browser', () => {
  it('sign up, upload, see the thumbnail in the feed, follow a second user and like their photo', {
    timeout: 90_000,
  }, async () => {
    const them = uniqueName('them');
    const me = uniqueName('me');

    const theirs = await browser.newPage();
    await signUp(theirs, them);
    await upload(theirs, 'theirs.png', 'their photo');
    await theirs.close();

    const page = await browser.newPage();
    await signUp(page, me);
    await upload(page, 'mine.jpg', 'my photo');
    await page.goto(`${app.url}/`);
    await imagesLoaded(page, '.card img');
    const mine = page.locator('.card', { hasText: 'my photo' }).locator('img');
    // 1200×900 with EXIF orientation 6 is portrait: the thumbnail is 240×320.
    expect(await mine.evaluate((i: HTMLImageElement) => [i.naturalWidth, i.naturalHeight])).toEqual([240, 320]);
    expect(await mine.getAttribute('width')).toBe('240');

    await page.goto(`${app.url}/u/${them}`);
    await page.click('button.follow');
    await expect.poll(() => page.locator('.followers').textContent()).toBe('1 followers');

    await page.goto(`${app.url}/`);
    await imagesLoaded(page, '.card img');
    const card = page.locator('.card', { hasText: 'their photo' });
    await expect.poll(() => card.count()).toBe(1);
    await card.locator('a').first().click();
    await page.click('button.like');
    await expect.poll(() => page.locator('.likes').textContent()).toBe('1 like');
    await page.screenshot({ path: path.join(artifacts, 'e2e-liked-photo.png') });
    await page.close();
  });
});
