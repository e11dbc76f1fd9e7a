import { test, expect } from './fixtures';
import { Messenger } from '../server';
import { closeContexts, conversation, say, signUpInUi, startChat } from './helpers';
import { deflateSync } from 'node:zlib';

let server: Messenger;
test.beforeEach(async () => {
  server = await Messenger.start();
});
test.afterEach(async ({ browser }) => {
  await closeContexts(browser);
  await server.dispose();
});

/** A real PNG of `w` x `h` pixels, made here so the test needs no file. */
function png(w: number, h: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer) => {
    let c = 0xffffffff;
    for (const x of b) c = crcTable[(c ^ x) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(h, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // RGB
  // Noise (a fixed pseudo-random sequence): it does not compress, so the file is large
  // enough for its upload to be seen in progress.
  let seed = 12345;
  const rows = [];
  for (let y = 0; y < h; y++) {
    const row = Buffer.alloc(1 + w * 3);
    for (let i = 1; i < row.length; i++) {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      row[i] = seed >>> 24;
    }
    rows.push(row);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

test('a photo dragged into a window shows its progress, then its thumbnail on both sides; a pasted picture is sent; files download, HTML too', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await startChat(alice, 'bob');
  await say(alice, 'bob', 'sending you a photo');
  await expect(conversation(bob, 'alice').getByText('sending you a photo')).toBeVisible();

  // A slow upload, so its progress is there to see.
  const cdp = await alice.context().newCDPSession(alice);
  await cdp.send('Network.enable');
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 20, downloadThroughput: -1, uploadThroughput: 400 * 1024,
  });
  const photo = png(900, 600);
  expect(photo.length).toBeGreaterThan(1_000_000);
  const dropped = await alice.evaluateHandle((b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'harbour.png', { type: 'image/png' }));
    return dt;
  }, photo.toString('base64'));
  await conversation(alice, 'bob').dispatchEvent('drop', { dataTransfer: dropped });
  const progress = conversation(alice, 'bob').getByRole('progressbar', { name: 'Sending harbour.png' });
  await expect(progress).toBeVisible();
  await expect(conversation(alice, 'bob').getByRole('button', { name: 'Cancel sending harbour.png' })).toBeVisible();
  await cdp.send('Network.emulateNetworkConditions', {
    offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1,
  });
  for (const [page, window] of [[alice, conversation(alice, 'bob')], [bob, conversation(bob, 'alice')]] as const) {
    const thumb = window.getByRole('img', { name: 'Photo: harbour.png' });
    await expect(thumb).toBeVisible();
    await expect.poll(() => thumb.evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBe(320);
    await expect(page.getByRole('link', { name: 'Download' }).first()).toBeVisible();
  }
  await expect(progress).toHaveCount(0);

  // A text file by the button; Bob downloads it.
  await conversation(alice, 'bob').getByLabel('Send a file').setInputFiles({
    name: 'minutes.txt', mimeType: 'text/plain', buffer: Buffer.from('Item 1: ship it.\n'),
  });
  const link = conversation(bob, 'alice').getByRole('link', { name: 'minutes.txt' });
  await expect(link).toBeVisible();
  const [download] = await Promise.all([bob.waitForEvent('download'), link.click()]);
  expect(download.suggestedFilename()).toBe('minutes.txt');
  const path = await download.path();
  expect((await import('node:fs')).readFileSync(path!, 'utf8')).toBe('Item 1: ship it.\n');

  // An HTML file is downloaded, never opened in the page's origin.
  await conversation(alice, 'bob').getByLabel('Send a file').setInputFiles({
    name: 'trap.html', mimeType: 'text/html',
    buffer: Buffer.from('<!doctype html><script>document.title = "ran"</script><p>hi</p>'),
  });
  const trap = conversation(bob, 'alice').getByRole('link', { name: 'trap.html' });
  await expect(trap).toBeVisible();
  const [html] = await Promise.all([bob.waitForEvent('download'), trap.click()]);
  expect(html.suggestedFilename()).toBe('trap.html');
  const href = await trap.getAttribute('href');
  const direct = await bob.request.get(`${server.url}${href}`);
  expect(direct.headers()['content-disposition']).toMatch(/^attachment/);
  expect(direct.headers()['content-type']).not.toContain('text/html');
  expect(direct.headers()['content-security-policy']).toMatch(/^sandbox/);
  expect(await bob.title()).not.toBe('ran');

  // A picture pasted into the message box is sent too (the text box keeps no trace of it).
  await conversation(alice, 'bob').getByLabel('Message to bob').evaluate((box, b64) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], 'clipboard.png', { type: 'image/png' }));
    box.dispatchEvent(new ClipboardEvent('paste', { clipboardData: dt, bubbles: true, cancelable: true }));
  }, png(40, 30).toString('base64'));
  await expect(conversation(bob, 'alice').getByRole('img', { name: 'Photo: clipboard.png' })).toBeVisible();
  await expect(conversation(alice, 'bob').getByLabel('Message to bob')).toHaveValue('');

  // After a reload, the history still shows them.
  await bob.reload();
  await startChat(bob, 'alice');
  await expect(conversation(bob, 'alice').getByRole('img', { name: 'Photo: harbour.png' })).toBeVisible();
});

test('a refused file says why and can be dismissed', async ({ browser }) => {
  const alice = await (await browser.newContext()).newPage();
  const bob = await (await browser.newContext()).newPage();
  await signUpInUi(alice, server.url, 'alice', 'alice-password');
  await signUpInUi(bob, server.url, 'bob', 'bob-password');
  await startChat(alice, 'bob');
  await conversation(alice, 'bob').getByLabel('Send a file').setInputFiles({
    name: 'fake.png', mimeType: 'image/png', buffer: Buffer.from('not a picture at all'),
  });
  await expect(conversation(alice, 'bob').getByRole('alert')).toContainText('fake.png is not a PNG picture');
  await conversation(alice, 'bob').getByRole('button', { name: 'Dismiss fake.png' }).click();
  await expect(conversation(alice, 'bob').getByRole('alert')).toHaveCount(0);
  await conversation(alice, 'bob').getByLabel('Send a file').setInputFiles({
    name: 'empty.txt', mimeType: 'text/plain', buffer: Buffer.alloc(0),
  });
  await expect(conversation(alice, 'bob').getByRole('alert')).toContainText('The file is empty');
});
