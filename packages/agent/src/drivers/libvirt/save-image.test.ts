import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readSaveImage } from './save-image.js';

const dir = mkdtempSync(join(tmpdir(), 'save-image-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const STREAM = Buffer.from('QEVM\0\0\0\x03 the migration stream, which must never change');

/** A save image as libvirt lays it out: header, XML and cookie in a padded region, then QEMU's stream. */
function saveImage(name: string, options: { xml?: string; cookie?: string; dataLength?: number; magic?: string; version?: number; cutAt?: number } = {}): string {
  const xml = Buffer.from(`${options.xml ?? '<domain><name>a</name></domain>'}\0`);
  const cookie = options.cookie === undefined ? Buffer.alloc(0) : Buffer.from(`${options.cookie}\0`);
  const dataLength = options.dataLength ?? 256;
  const header = Buffer.alloc(92);
  header.write(options.magic ?? 'LibvirtQemudSave', 0, 'latin1');
  header.writeUInt32LE(options.version ?? 2, 16);
  header.writeUInt32LE(dataLength, 20);
  header.writeUInt32LE(1, 24);
  header.writeUInt32LE(options.cookie === undefined ? 0 : xml.length, 32);
  const region = Buffer.alloc(dataLength);
  xml.copy(region, 0);
  cookie.copy(region, xml.length);
  const path = join(dir, name);
  writeFileSync(path, Buffer.concat([header, region, STREAM]).subarray(0, options.cutAt));
  return path;
}

describe('readSaveImage', () => {
  it.each([
    ['with a cookie', '<cookie><cpu/></cookie>'],
    ['without a cookie', undefined],
  ])('reads the XML and rewrites it in place %s, the cookie and the stream kept', async (_name, cookie) => {
    const path = saveImage(`ok-${cookie === undefined ? 'plain' : 'cookie'}`, { cookie });
    const image = await readSaveImage(path);
    expect(image.xml).toBe('<domain><name>a</name></domain>');
    await image.rewrite('<domain><name>a-much-longer-name-than-before</name></domain>');
    const again = await readSaveImage(path);
    expect(again.xml).toBe('<domain><name>a-much-longer-name-than-before</name></domain>');
    const bytes = readFileSync(path);
    expect(bytes.length).toBe(92 + 256 + STREAM.length);
    expect(bytes.subarray(92 + 256).equals(STREAM)).toBe(true);
    const cookieOffset = bytes.readUInt32LE(32);
    const storedCookie = cookieOffset === 0 ? undefined : bytes.toString('utf8', 92 + cookieOffset, bytes.indexOf(0, 92 + cookieOffset));
    expect(storedCookie).toBe(cookie);
  });

  it.each([
    ['not a save image', { magic: 'SomethingElse!!!' }, /is not a libvirt QEMU save image/],
    ['another version', { version: 3 }, /of version 3; version 2 is understood/],
    ['a file cut short inside its XML region', { cutAt: 200 }, /ends inside its header/],
  ])('refuses %s', async (name, options, message) => {
    await expect(readSaveImage(saveImage(name.replace(/ /g, '-'), options))).rejects.toThrow(message);
  });

  it('refuses XML that does not fit the padding and leaves the file as it was', async () => {
    const path = saveImage('tight', { cookie: '<cookie/>', dataLength: 64 });
    const before = readFileSync(path);
    const image = await readSaveImage(path);
    await expect(image.rewrite(`<domain>${'x'.repeat(64)}</domain>`)).rejects.toThrow(/does not fit the 54 bytes/);
    expect(readFileSync(path).equals(before)).toBe(true);
  });
});
